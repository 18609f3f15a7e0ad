//! Tessera's durable store on redb: the block log and background state checkpoints.
