// The C++ side of capi/tests/c_readers.rs: the RAII layer (shmstate.hpp)
// over the object Rust publishes, then a writer taking it over. `reader fields NAME`.
#include <cstdio>
#include <cstring>
#include <numeric>
#include <string>

#include "shmstate.hpp"

int main(int argc, char **argv) {
    if (argc != 3 || std::strcmp(argv[1], "fields") != 0) return 2;
    try {
        shmstate::reader r(argv[2]);
        shmstate::snapshot snap = r.read();
        std::printf("max_conns %llu\n", static_cast<unsigned long long>(snap.get("limits.max_conns").as_u64()));
        auto weights = snap.get("weights").as_numbers<double>();
        std::printf("weights %zu sum %g\n", weights.size, std::accumulate(weights.begin(), weights.end(), 0.0));
        shmstate::value root = snap.root();
        if (root.type_name() != "Config" || root.field("name").as_str() != "edge-router") return 1;
        if (root.get("by_name").at("eu-1").as_u64() != 11 || root.get("mode").variant() != "Active") return 1;
        if (!root.get("pair.1").as_bool() || root.get("ids")[2].as_u64() != 9) return 1;
        try {
            snap.get("missing");
            return 1;
        } catch (const shmstate::error &e) {
            std::printf("missing %s\n", shmstate_error_name(e.code()));
        }
        shmstate::reader moved = std::move(r);
        if (moved.generation() != snap.generation()) return 1;
        // Unchanged: the inlined fast path hands back the held snapshot.
        if (moved.read().generation() != snap.generation()) return 1;
        // The Rust writer is gone: take the object over and publish from C++.
        shmstate::writer w(argv[2]);
        try {
            w.publish_json("{\"stamp\": -1}");
            return 1;
        } catch (const shmstate::error &e) {
            std::printf("bad json %s\n", shmstate_error_name(e.code()));
        }
        std::string json;
        for (int c; (c = std::getchar()) != EOF && c != '\n';) json.push_back(static_cast<char>(c));
        std::printf("published %llu\n", static_cast<unsigned long long>(w.publish_json(json)));
        // Changed: the fast path must see the new publish word and take the slow path.
        std::printf("reread %llu\n", static_cast<unsigned long long>(moved.read().generation()));
    } catch (const shmstate::error &e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    return 0;
}
