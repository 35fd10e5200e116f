//! The benchmark types again, derived with rkyv 0.7 for mmap-sync.

use std::collections::HashMap;

use rkyv07::{Archive, Serialize};

use crate::types;

#[derive(Archive, Serialize)]
#[archive(crate = "rkyv07", check_bytes)]
pub struct Small {
    pub generation: u64,
    pub port: u16,
    pub flags: u32,
    pub ratio: f64,
    pub name: String,
    pub ids: Vec<u64>,
}

#[derive(Archive, Serialize)]
#[archive(crate = "rkyv07", check_bytes)]
pub struct Endpoint {
    pub name: String,
    pub address: String,
    pub weight: u32,
    pub enabled: bool,
}

#[derive(Archive, Serialize)]
#[archive(crate = "rkyv07", check_bytes)]
pub struct Config {
    pub generation: u64,
    pub created_unix_ns: u64,
    pub max_connections: u32,
    pub sample_rate: f64,
    pub tracing_enabled: bool,
    pub service_name: String,
    pub allowlist_ids: Vec<u64>,
    pub endpoints: Vec<Endpoint>,
    pub limits: HashMap<String, u64>,
}

#[derive(Archive, Serialize)]
#[archive(crate = "rkyv07", check_bytes)]
pub struct Large {
    pub generation: u64,
    pub weights: Vec<u64>,
    pub labels: Vec<String>,
}

#[derive(Archive, Serialize)]
#[archive(crate = "rkyv07", check_bytes)]
pub struct Probe {
    pub seq: u64,
    pub payload: Vec<u64>,
    pub seq_tail: u64,
}

pub fn small(v: &types::Small) -> Small {
    Small {
        generation: v.generation,
        port: v.port,
        flags: v.flags,
        ratio: v.ratio,
        name: v.name.clone(),
        ids: v.ids.clone(),
    }
}

pub fn config(v: &types::Config) -> Config {
    Config {
        generation: v.generation,
        created_unix_ns: v.created_unix_ns,
        max_connections: v.max_connections,
        sample_rate: v.sample_rate,
        tracing_enabled: v.tracing_enabled,
        service_name: v.service_name.clone(),
        allowlist_ids: v.allowlist_ids.clone(),
        endpoints: v
            .endpoints
            .iter()
            .map(|e| Endpoint {
                name: e.name.clone(),
                address: e.address.clone(),
                weight: e.weight,
                enabled: e.enabled,
            })
            .collect(),
        limits: v.limits.clone(),
    }
}

pub fn large(v: &types::Large) -> Large {
    Large { generation: v.generation, weights: v.weights.clone(), labels: v.labels.clone() }
}

pub fn probe(v: &types::Probe) -> Probe {
    Probe { seq: v.seq, payload: v.payload.clone(), seq_tail: v.seq_tail }
}
