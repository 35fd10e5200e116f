// shmstate.hpp: a thin C++17 layer over shmstate.h. RAII readers,
// std::string_view strings, span-like numeric views; failures throw
// shmstate::error (code + message). The lifetimes are shmstate.h's: a
// snapshot, its values and views are valid until the next read(), release()
// or the reader's destruction.
#ifndef SHMSTATE_HPP
#define SHMSTATE_HPP

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "shmstate.h"

namespace shmstate {

// A failed call: code() is the shmstate_error_t, what() the message.
class error : public std::runtime_error {
public:
    error(shmstate_error_t code, const char *message)
        : std::runtime_error(std::string(shmstate_error_name(code)) + ": " + message), code_(code) {}
    shmstate_error_t code() const noexcept { return code_; }

private:
    shmstate_error_t code_;
};

namespace detail {
inline void check(shmstate_error_t code) {
    if (code != SHMSTATE_OK) throw error(code, shmstate_last_error_message());
}
}  // namespace detail

// Numbers in place: pointer + count into the shared mapping (read-only).
template <typename T>
struct numbers {
    const T *data = nullptr;
    std::size_t size = 0;
    const T *begin() const noexcept { return data; }
    const T *end() const noexcept { return data + size; }
    const T &operator[](std::size_t i) const noexcept { return data[i]; }
};

template <typename T> struct number_type;
template <> struct number_type<uint8_t> { static constexpr int id = SHMSTATE_U8; };
template <> struct number_type<int8_t> { static constexpr int id = SHMSTATE_I8; };
template <> struct number_type<uint16_t> { static constexpr int id = SHMSTATE_U16; };
template <> struct number_type<int16_t> { static constexpr int id = SHMSTATE_I16; };
template <> struct number_type<uint32_t> { static constexpr int id = SHMSTATE_U32; };
template <> struct number_type<int32_t> { static constexpr int id = SHMSTATE_I32; };
template <> struct number_type<uint64_t> { static constexpr int id = SHMSTATE_U64; };
template <> struct number_type<int64_t> { static constexpr int id = SHMSTATE_I64; };
template <> struct number_type<float> { static constexpr int id = SHMSTATE_F32; };
template <> struct number_type<double> { static constexpr int id = SHMSTATE_F64; };

// A value of a held snapshot (plain data, like shmstate_value).
class value {
public:
    explicit value(shmstate_value raw) noexcept : raw_(raw) {}
    const shmstate_value &raw() const noexcept { return raw_; }

    value get(const char *path) const { return step(shmstate_value_get, path); }
    value field(const char *name) const { return step(shmstate_value_field, name); }
    value operator[](uint64_t i) const {
        shmstate_value out;
        detail::check(shmstate_value_index(&raw_, i, &out));
        return value(out);
    }
    value at(std::string_view key) const {
        shmstate_value out;
        detail::check(shmstate_value_lookup_str(&raw_, key.data(), key.size(), &out));
        return value(out);
    }
    shmstate_kind_t kind() const {
        int k = 0;
        detail::check(shmstate_value_kind(&raw_, &k));
        return static_cast<shmstate_kind_t>(k);
    }
    uint64_t size() const {
        uint64_t n = 0;
        detail::check(shmstate_value_len(&raw_, &n));
        return n;
    }
    std::string_view type_name() const { return text(shmstate_value_type_name); }
    std::string_view variant() const { return text(shmstate_value_variant); }
    uint64_t as_u64() const { return leaf<uint64_t>(shmstate_value_u64); }
    int64_t as_i64() const { return leaf<int64_t>(shmstate_value_i64); }
    double as_f64() const { return leaf<double>(shmstate_value_f64); }
    bool as_bool() const { return leaf<int>(shmstate_value_bool) != 0; }
    std::string_view as_str() const { return text(shmstate_value_str); }
    template <typename T>
    numbers<T> as_numbers() const {
        const void *data = nullptr;
        uint64_t n = 0;
        detail::check(shmstate_value_numbers(&raw_, number_type<T>::id, &data, &n));
        return numbers<T>{static_cast<const T *>(data), static_cast<std::size_t>(n)};
    }

private:
    template <typename F>
    value step(F f, const char *arg) const {
        shmstate_value out;
        detail::check(f(&raw_, arg, &out));
        return value(out);
    }
    template <typename T, typename F>
    T leaf(F f) const {
        T out{};
        detail::check(f(&raw_, &out));
        return out;
    }
    template <typename F>
    std::string_view text(F f) const {
        const char *data = nullptr;
        std::size_t n = 0;
        detail::check(f(&raw_, &data, &n));
        return std::string_view(data, n);
    }
    shmstate_value raw_;
};

// The snapshot a reader holds (owned by the reader; copy freely).
class snapshot {
public:
    explicit snapshot(const shmstate_snapshot *raw) noexcept : raw_(raw) {}
    uint64_t generation() const noexcept { return shmstate_snapshot_generation(raw_); }
    value root() const {
        shmstate_value out;
        detail::check(shmstate_root(raw_, &out));
        return value(out);
    }
    value get(const char *path) const {
        shmstate_value out;
        detail::check(shmstate_get(raw_, path, &out));
        return value(out);
    }
    const shmstate_snapshot *raw() const noexcept { return raw_; }

private:
    const shmstate_snapshot *raw_;
};

// A reader: opened by the constructor, closed by the destructor. Movable.
class reader {
public:
    explicit reader(const char *name, const shmstate_open_options *options = nullptr) {
        detail::check(shmstate_reader_open(name, options, &raw_));
        fast_ = shmstate_reader_fast_path(raw_);
    }
    reader(reader &&other) noexcept : raw_(other.raw_), fast_(other.fast_) {
        other.raw_ = nullptr;
        other.fast_ = nullptr;
    }
    reader &operator=(reader &&other) noexcept {
        if (this != &other) {
            shmstate_reader_close(raw_);
            raw_ = other.raw_;
            fast_ = other.fast_;
            other.raw_ = nullptr;
            other.fast_ = nullptr;
        }
        return *this;
    }
    reader(const reader &) = delete;
    reader &operator=(const reader &) = delete;
    ~reader() { shmstate_reader_close(raw_); }

    // Unchanged: one load inlined here (shmstate_read_fast).
    snapshot read() {
        const shmstate_snapshot *s = nullptr;
        detail::check(shmstate_read_fast(raw_, fast_, &s));
        return snapshot(s);
    }
    void release() noexcept { shmstate_release(raw_); }
    uint64_t generation() const noexcept { return shmstate_reader_generation(raw_); }
    // The generation published after `than`; throws on TIMEOUT, WRITER_DEAD…
    uint64_t wait_newer(uint64_t than, uint64_t timeout_ns) {
        uint64_t next = 0;
        detail::check(shmstate_wait_newer(raw_, than, timeout_ns, &next));
        return next;
    }
    shmstate_reader *raw() const noexcept { return raw_; }

private:
    shmstate_reader *raw_ = nullptr;
    const shmstate_fast_path *fast_ = nullptr; // owned by raw_
};

// A writer: opened by the constructor (schema_json NULL: take the existing
// object over with its stored schema), closed by the destructor. Movable.
class writer {
public:
    explicit writer(const char *name, const char *schema_json = nullptr) {
        detail::check(shmstate_writer_open(name, schema_json, &raw_));
    }
    writer(writer &&other) noexcept : raw_(other.raw_) { other.raw_ = nullptr; }
    writer &operator=(writer &&other) noexcept {
        if (this != &other) {
            shmstate_writer_close(raw_);
            raw_ = other.raw_;
            other.raw_ = nullptr;
        }
        return *this;
    }
    writer(const writer &) = delete;
    writer &operator=(const writer &) = delete;
    ~writer() { shmstate_writer_close(raw_); }

    // Publishes a JSON value under the object's schema; returns its generation.
    uint64_t publish_json(std::string_view json) {
        uint64_t generation = 0;
        detail::check(shmstate_publish_json(raw_, json.data(), json.size(), &generation));
        return generation;
    }

private:
    shmstate_writer *raw_ = nullptr;
};

}  // namespace shmstate

#endif  // SHMSTATE_HPP
