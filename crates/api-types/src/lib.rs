//! JSON types of Tessera's HTTP API, shared by the node, the wallet and tests.
