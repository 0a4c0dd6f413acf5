//! Tells the integration tests where this build's programs are: `ibackup`, `ibackup-server`
//! and `ibackup-load` belong to other packages of the workspace, for which cargo sets no
//! `CARGO_BIN_EXE_*`. They are built beside this package's build folder:
//! OUT_DIR is `<target>/<profile>/build/<package>-<hash>/out`.

fn main() {
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let programs = out
        .ancestors()
        .nth(3)
        .expect("OUT_DIR is 4 levels into the target folder");
    println!("cargo:rustc-env=IBACKUP_BIN_DIR={}", programs.display());
    println!("cargo:rerun-if-changed=build.rs");
}
