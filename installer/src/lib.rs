//! `tether-install`'s parts, as a library so the manifest test can check the DaemonSet's settings against the
//! ones the installer knows: [`settings`] (what is read and validated), [`render`] (the conflist or containerd's
//! template), [`atomic`] (replacing a file safely), [`install`] (what is kept on the node). The binary is
//! `main.rs`.

pub mod atomic;
pub mod install;
pub mod render;
pub mod settings;
