//! String Hashr, the demo application of burst: worker, frontend, load generator and a local mesh proxy.
