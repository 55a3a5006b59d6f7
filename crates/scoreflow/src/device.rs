//! Where the burn path computes: the CPU (burn's Flex backend, always built) or a GPU through
//! wgpu — pinned to Vulkan (`vulkan[:N]`, the N-th discrete GPU, N = 0 by default) or on
//! whichever graphics API wgpu picks (`wgpu`). The GPU choices need the crate's `vulkan` (or
//! `wgpu`) feature; asking for one that was not built, or for a GPU the machine does not have,
//! is a one-line [`Error`], not a panic.
//!
//! Checkpoints do not depend on the device: weights, optimiser moments and RNG states are
//! stored on the host, so a run trained on a GPU resumes or samples on the CPU and back.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::tensor::Device;

/// A device to run the burn path on (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DeviceChoice {
    /// The CPU, burn's Flex backend.
    #[default]
    Cpu,
    /// The N-th discrete GPU through Vulkan.
    Vulkan(usize),
    /// The best adapter on whichever graphics API wgpu picks.
    Wgpu,
}

impl DeviceChoice {
    /// True when this build can open the device kind (`cpu` always; `vulkan` with the
    /// `vulkan` feature; `wgpu` with `wgpu` or `vulkan`).
    pub fn compiled(self) -> bool {
        match self {
            DeviceChoice::Cpu => true,
            DeviceChoice::Vulkan(_) => cfg!(feature = "vulkan"),
            DeviceChoice::Wgpu => cfg!(any(feature = "wgpu", feature = "vulkan")),
        }
    }

    /// True for the GPU choices.
    pub fn is_gpu(self) -> bool {
        self != DeviceChoice::Cpu
    }

    /// Opens the device: the Flex CPU device, or initialises the wgpu runtime on the chosen
    /// adapter (once per process; later calls return the same device). Errors when the
    /// feature is missing from this build or no such adapter exists.
    pub fn open(self) -> Result<Device> {
        if !self.compiled() {
            let feature = if self == DeviceChoice::Wgpu {
                "wgpu"
            } else {
                "vulkan"
            };
            return Err(Error::InvalidInput(format!(
                "device '{self}' needs a GPU build: this scoreflow was built without the \
                 `{feature}` feature (cargo build --release --features {feature})"
            )));
        }
        match self {
            DeviceChoice::Cpu => Ok(crate::tensor::cpu()),
            _ => gpu::open(self),
        }
    }
}

#[cfg(any(feature = "wgpu", feature = "vulkan"))]
mod gpu {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};

    use burn::tensor::wgpu::WgpuBackend;
    use burn::tensor::DeviceKind;

    use super::DeviceChoice;
    use crate::error::{Error, Result};
    use crate::tensor::Device;

    /// Devices already initialised (the wgpu runtime refuses a second initialisation).
    fn opened() -> &'static Mutex<HashMap<DeviceChoice, Device>> {
        static OPENED: OnceLock<Mutex<HashMap<DeviceChoice, Device>>> = OnceLock::new();
        OPENED.get_or_init(Default::default)
    }

    pub(super) fn open(choice: DeviceChoice) -> Result<Device> {
        let mut map = opened()
            .lock()
            .map_err(|_| Error::InvalidInput("the device table is poisoned".into()))?;
        if let Some(d) = map.get(&choice) {
            return Ok(d.clone());
        }
        let (kind, api) = match choice {
            DeviceChoice::Vulkan(n) => (DeviceKind::DiscreteGpu(n), WgpuBackend::Vulkan),
            _ => (DeviceKind::DefaultDevice, WgpuBackend::Auto),
        };
        let device = Device::wgpu_options()
            .device_kind(kind)
            .graphics_api(api)
            .init()
            .map_err(|e| {
                Error::InvalidInput(format!(
                    "cannot open device '{choice}': {}",
                    e.to_string().lines().next().unwrap_or("no adapter")
                ))
            })?;
        map.insert(choice, device.clone());
        Ok(device)
    }
}

#[cfg(not(any(feature = "wgpu", feature = "vulkan")))]
mod gpu {
    use super::DeviceChoice;
    use crate::error::{Error, Result};
    use crate::tensor::Device;

    pub(super) fn open(choice: DeviceChoice) -> Result<Device> {
        Err(Error::InvalidInput(format!(
            "device '{choice}' is not compiled into this build"
        )))
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Cpu => write!(f, "cpu"),
            DeviceChoice::Vulkan(n) => write!(f, "vulkan:{n}"),
            DeviceChoice::Wgpu => write!(f, "wgpu"),
        }
    }
}

impl FromStr for DeviceChoice {
    type Err = Error;
    /// `cpu`, `vulkan` (= `vulkan:0`), `vulkan:N` or `wgpu`, case-insensitive.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::InvalidInput(format!(
                "unknown device '{s}' (choose cpu, vulkan, vulkan:N or wgpu)"
            ))
        };
        let lower = s.trim().to_ascii_lowercase();
        match lower.split_once(':') {
            None => match lower.as_str() {
                "cpu" => Ok(DeviceChoice::Cpu),
                "vulkan" => Ok(DeviceChoice::Vulkan(0)),
                "wgpu" => Ok(DeviceChoice::Wgpu),
                _ => Err(bad()),
            },
            Some(("vulkan", n)) => n.parse().map(DeviceChoice::Vulkan).map_err(|_| {
                Error::InvalidInput(format!(
                    "device '{s}': the GPU index '{n}' is not a number (e.g. vulkan:0)"
                ))
            }),
            Some(_) => Err(bad()),
        }
    }
}

impl serde::Serialize for DeviceChoice {
    /// As its name (`cpu`, `vulkan:N`, `wgpu`).
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for DeviceChoice {
    /// From its name ([`DeviceChoice::from_str`]).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_devices() {
        for (s, d) in [
            ("cpu", DeviceChoice::Cpu),
            ("CPU", DeviceChoice::Cpu),
            ("vulkan", DeviceChoice::Vulkan(0)),
            ("vulkan:2", DeviceChoice::Vulkan(2)),
            ("wgpu", DeviceChoice::Wgpu),
        ] {
            assert_eq!(s.parse::<DeviceChoice>().unwrap(), d);
            assert_eq!(d.to_string().parse::<DeviceChoice>().unwrap(), d);
            let json = serde_json::to_string(&d).unwrap();
            assert_eq!(json, format!("\"{d}\""));
            assert_eq!(serde_json::from_str::<DeviceChoice>(&json).unwrap(), d);
        }
        for bad in ["gpu", "vulkan:", "vulkan:x", "cuda:0", "", "cpu:1"] {
            let e = bad.parse::<DeviceChoice>().unwrap_err().to_string();
            assert!(!e.contains('\n') && e.contains(bad), "{bad}: {e}");
        }
    }

    /// The CPU always opens; a GPU choice in a CPU-only build is a one-line error naming the
    /// feature to build with.
    #[test]
    fn cpu_opens_and_missing_features_are_explained() {
        assert!(DeviceChoice::Cpu.open().is_ok());
        if !cfg!(feature = "vulkan") {
            let e = DeviceChoice::Vulkan(0).open().unwrap_err().to_string();
            assert!(e.contains("--features vulkan") && !e.contains('\n'), "{e}");
        }
        if !cfg!(any(feature = "wgpu", feature = "vulkan")) {
            let e = DeviceChoice::Wgpu.open().unwrap_err().to_string();
            assert!(e.contains("--features wgpu"), "{e}");
        }
    }
}
