//! Models trained elsewhere: a PyTorch `nn.Sequential` MLP as a run directory.
//!
//! The networks of TorchCFM (`MLP(dim, w, time_varying=True)`), Meta flow_matching's 2-D
//! examples and the reference scripts of `../shared/bench` are `nn.Sequential` stacks of
//! `Linear` layers with a parameter-free activation in between, taking [x, t] (or [t, x]) and
//! returning d numbers. [`import_mlp`] reads their `safetensors` state dict
//! ([`Mlp::from_pytorch`]: weights `(d_out, d_in)` transposed, the time column moved last),
//! checks it against the data, and writes a run directory that every command taking a run
//! accepts — `sample`, `likelihood`, `eval`, `plot`, `diagnose`, `report`.
//!
//! What the network computes is the caller's statement ([`TrainSettings`]: `method`, `path`,
//! `sde`, `target`, `noise_input`, …): a velocity of conditional flow matching on the straight
//! path (TorchCFM with σ = 0, flow_matching's `CondOTProbPath`) is `method = cfm, path = condot`.
//! PyTorch models see raw data, so the normaliser is the identity unless `normalize = yes`
//! says the network was trained on standardised data (then it is fitted as `train` fits it).

use std::path::Path;
use std::sync::Arc;

use super::{Model, HELDOUT_FILE};
use crate::checkpoint::RunMeta;
use crate::data::{self, NormalizeMode, Normalizer, Points};
use crate::error::{Error, Result};
use crate::field::mlp::{Mlp, SequentialLayout, TimeColumn};
use crate::field::network::Network;
use crate::fused::FusedMlp;
use crate::model::settings::{load_points_or_explain, TrainSettings};
use crate::state::StateDict;
use crate::tensor::{self, DType};

/// What [`import_mlp`] found and wrote.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The model (saved in the run directory).
    pub model: Model,
    /// The PyTorch layout that was read (prefix, Linear indices, shapes).
    pub layout: SequentialLayout,
    /// Parameters in the network.
    pub parameters: usize,
}

/// Imports the `nn.Sequential` MLP in `weights` (safetensors) as a model of `settings`
/// (data, kind, activation; `width`/`depth` are read from the weights) and writes it as the run
/// directory `out`: `config.toml`, `model.safetensors`, `meta.json`, and for file data the whole
/// file as the held-out split (the network never saw it as our training data).
pub fn import_mlp(
    weights: &Path,
    mut settings: TrainSettings,
    time: TimeColumn,
    out: &Path,
) -> Result<Imported> {
    let sd = StateDict::read(weights)?;
    let (mlp, layout) =
        Mlp::from_pytorch(&sd, settings.activation, time, &tensor::cpu(), DType::F32)?;
    let config = mlp.config.clone();
    let d = config.dim;
    let file_points: Option<Points> = match settings.dataset() {
        Some(ds) => {
            if ds.dim() != d {
                return Err(Error::Shape(format!(
                    "{}: the network maps {}-D points (first layer {} inputs = d + 1 for t) but {ds} is {}-D",
                    weights.display(),
                    d,
                    d + 1,
                    ds.dim()
                )));
            }
            None
        }
        None => Some(load_points_or_explain(&settings.data, Some(d))?),
    };
    settings.width = config.width;
    settings.depth = config.depth;
    let normalizer = match settings.normalize {
        NormalizeMode::Yes => match &file_points {
            Some(p) => Normalizer::fit(p)?,
            None => settings.training_data()?.1,
        },
        NormalizeMode::Auto | NormalizeMode::No => {
            settings.normalize = NormalizeMode::No;
            Normalizer::identity(d)
        }
    };
    settings.validate()?;
    let data_sample = match (&file_points, settings.dataset()) {
        (Some(p), _) => p.clone(),
        (None, Some(ds)) => ds.sample(10_000, &mut tensor::rng(0)),
        (None, None) => unreachable!("data is a built-in set or a file"),
    };
    let model_units = normalizer.apply(&data_sample)?;
    let kind = settings.model_kind(|| model_units)?;
    let parameters = config.num_params();
    let network: Arc<dyn Network> = Arc::new(FusedMlp::from_mlp(&mlp));
    let mut meta = RunMeta::new(network.architecture());
    meta.engine = format!("imported from {}", weights.display());
    let mut model = Model::new(network, kind, normalizer, settings, meta)?;
    model.save(out)?;
    if let Some(p) = &file_points {
        data::write_npy(out.join(HELDOUT_FILE), p)?;
    }
    Ok(Imported {
        model,
        layout,
        parameters,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TrainMethod;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name)
    }

    /// The imported TorchCFM model, loaded back from its run directory, follows PyTorch's own
    /// float64 Euler trajectory (100 steps) to f32 accuracy, and its log-likelihoods agree with
    /// torchdiffeq's dopri5 at 1e-8 to 1e-3 nats.
    #[test]
    fn torchcfm_import_round_trips_through_a_run_directory() {
        let dir = std::env::temp_dir().join(format!("scoreflow-import-{}", std::process::id()));
        let settings = TrainSettings {
            data: "8gaussians".into(),
            method: TrainMethod::Cfm,
            activation: crate::field::mlp::Activation::Selu,
            ..TrainSettings::default()
        };
        let imp = import_mlp(
            &fixture("torchcfm/model.safetensors"),
            settings,
            TimeColumn::Last,
            &dir,
        )
        .unwrap();
        assert_eq!(
            (imp.model.settings.width, imp.model.settings.depth),
            (64, 3)
        );
        assert_eq!(imp.layout.prefix, "net.");
        let model = Model::load(&dir).unwrap();
        assert_eq!(model.normalizer, Normalizer::identity(2));

        // log p against torchdiffeq.
        let text = std::fs::read_to_string(fixture("torchcfm/loglik.csv")).unwrap();
        let rows: Vec<Vec<f64>> = text
            .lines()
            .skip(1)
            .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
            .collect();
        let x = Points::new(rows.iter().flat_map(|r| [r[0], r[1]]).collect(), 2).unwrap();
        let opts = crate::likelihood::LikelihoodOptions {
            ode: crate::solve::choice::ode_options(
                crate::solve::Method::Dopri5,
                None,
                Some(1e-7),
                Some(1e-7),
            )
            .unwrap(),
            ..Default::default()
        };
        let lik = model
            .log_likelihood(&x, &opts, &mut tensor::rng(0))
            .unwrap();
        for (i, r) in rows.iter().enumerate() {
            assert!(
                (lik.log_prob[i] - r[2]).abs() < 1e-3,
                "point {i}: {} vs torchdiffeq {}",
                lik.log_prob[i],
                r[2]
            );
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_network_of_the_wrong_dimension_is_refused_with_the_shapes() {
        let dir = std::env::temp_dir().join(format!("scoreflow-import-bad-{}", std::process::id()));
        let settings = TrainSettings {
            data: "gmm_aniso".into(),
            ..TrainSettings::default()
        };
        // The fixture is 2-D; every built-in set is 2-D too, so use a 3-D file.
        let file = dir.with_extension("csv");
        std::fs::write(&file, "1,2,3\n4,5,6\n7,8,9\n").unwrap();
        let settings = TrainSettings {
            data: file.display().to_string(),
            ..settings
        };
        let err = import_mlp(
            &fixture("torchcfm/model.safetensors"),
            settings,
            TimeColumn::Last,
            &dir,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains('3') && err.contains('2'), "{err}");
        assert!(!dir.exists(), "nothing written on error");
        std::fs::remove_file(&file).ok();
    }
}
