//! The parameters of a model, by their Hugging Face names, each with the stable noise id
//! (`param_id` of its [`eggroll_backend::NoiseStream`]) it is registered with: ids in a fixed
//! order (the embedding, then each layer's tensors, then the final norm and the head), so that
//! the same checkpoint always draws the same noise for the same tensor. As the authors' runs do,
//! only the projections (q, k, v, o, gate, up and down) are perturbed by default; embeddings,
//! norms, biases and the head are frozen ([`Included`] names those a run trains too).

use crate::config::ModelConfig;

/// The role of a parameter in the forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A projection matrix of attention or the MLP (perturbed by default).
    Projection,
    /// The token embedding or the logits head.
    Embedding,
    /// An RMSNorm weight.
    Norm,
    /// A bias of q, k or v.
    Bias,
}

/// One parameter: its Hugging Face name, noise id, shape and role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    /// The tensor's name in the checkpoint.
    pub name: String,
    /// The noise id.
    pub id: u32,
    /// The shape (`[m, n]` of `y = x Wᵀ` for a matrix, `[len]` for a vector).
    pub shape: Vec<usize>,
    /// What it is.
    pub role: Role,
}

/// Every parameter of a model of `config`, in noise-id order.
pub fn registry(config: &ModelConfig) -> Vec<Param> {
    let (h, hd, i) = (config.hidden, config.head_dim, config.intermediate);
    let (q, kv) = (config.heads * hd, config.kv_heads * hd);
    let mut params = Vec::new();
    let mut add = |name: String, shape: Vec<usize>, role: Role| {
        let id = params.len() as u32;
        params.push(Param { name, id, shape, role });
    };
    add("model.embed_tokens.weight".into(), vec![config.vocab, h], Role::Embedding);
    for l in 0..config.layers {
        let p = |name: &str| format!("model.layers.{l}.{name}");
        add(p("input_layernorm.weight"), vec![h], Role::Norm);
        add(p("self_attn.q_proj.weight"), vec![q, h], Role::Projection);
        add(p("self_attn.k_proj.weight"), vec![kv, h], Role::Projection);
        add(p("self_attn.v_proj.weight"), vec![kv, h], Role::Projection);
        add(p("self_attn.o_proj.weight"), vec![h, q], Role::Projection);
        if config.qkv_bias {
            add(p("self_attn.q_proj.bias"), vec![q], Role::Bias);
            add(p("self_attn.k_proj.bias"), vec![kv], Role::Bias);
            add(p("self_attn.v_proj.bias"), vec![kv], Role::Bias);
        }
        if config.qk_norm {
            add(p("self_attn.q_norm.weight"), vec![hd], Role::Norm);
            add(p("self_attn.k_norm.weight"), vec![hd], Role::Norm);
        }
        add(p("post_attention_layernorm.weight"), vec![h], Role::Norm);
        add(p("mlp.gate_proj.weight"), vec![i, h], Role::Projection);
        add(p("mlp.up_proj.weight"), vec![i, h], Role::Projection);
        add(p("mlp.down_proj.weight"), vec![h, i], Role::Projection);
    }
    add("model.norm.weight".into(), vec![h], Role::Norm);
    if !config.tied {
        add("lm_head.weight".into(), vec![config.vocab, h], Role::Embedding);
    }
    params
}

/// The noise id of the tensor `name` in [`registry`].
pub fn id_of(config: &ModelConfig, name: &str) -> Option<u32> {
    registry(config).into_iter().find(|p| p.name == name).map(|p| p.id)
}

/// Which of the tensors beyond the projections fine-tuning perturbs and updates with them
/// (`--include`): all frozen by default, as in the authors' runs. In a model whose head is tied
/// to the embedding, `embeddings` and `head` name the one table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Included {
    /// The token embedding (low-rank noise, as a projection's).
    pub embeddings: bool,
    /// The logits head (low-rank noise).
    pub head: bool,
    /// Every RMSNorm weight (full-rank vector noise).
    pub norms: bool,
    /// The biases of q, k and v (full-rank vector noise).
    pub biases: bool,
}

impl Included {
    /// Every group.
    pub const ALL: Included = Included { embeddings: true, head: true, norms: true, biases: true };
    /// The words `--include` takes.
    pub const WORDS: [&'static str; 6] = ["embeddings", "head", "norms", "biases", "all", "none"];

    /// Whether `param` of a model of `config` is trained: every projection, and the groups
    /// included.
    pub fn trains(&self, config: &ModelConfig, param: &Param) -> bool {
        match param.role {
            Role::Projection => true,
            Role::Norm => self.norms,
            Role::Bias => self.biases,
            Role::Embedding if param.name == "lm_head.weight" => self.head,
            Role::Embedding => self.embeddings || (config.tied && self.head),
        }
    }

    /// The groups included, by their `--include` words (empty when none is).
    pub fn words(&self) -> Vec<&'static str> {
        [(self.embeddings, "embeddings"), (self.head, "head"), (self.norms, "norms"), (self.biases, "biases")]
            .into_iter()
            .filter_map(|(on, word)| on.then_some(word))
            .collect()
    }
}

impl std::str::FromStr for Included {
    type Err = String;

    /// A comma-separated list of [`Included::WORDS`]; the empty list and `none` include nothing.
    fn from_str(list: &str) -> std::result::Result<Self, String> {
        let mut included = Included::default();
        for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word {
                "embeddings" => included.embeddings = true,
                "head" => included.head = true,
                "norms" => included.norms = true,
                "biases" => included.biases = true,
                "all" => included = Included::ALL,
                "none" => {}
                other => return Err(format!("`{other}` is not a group of tensors to include; the groups: {}", Included::WORDS.join(", "))),
            }
        }
        Ok(included)
    }
}

impl std::fmt::Display for Included {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let words = self.words();
        f.write_str(if words.is_empty() { "none" } else { "" })?;
        f.write_str(&words.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_names_the_groups() {
        assert_eq!("".parse::<Included>().unwrap(), Included::default());
        assert_eq!("none".parse::<Included>().unwrap(), Included::default());
        assert_eq!("all".parse::<Included>().unwrap(), Included::ALL);
        let some: Included = "norms, head".parse().unwrap();
        assert_eq!(some, Included { head: true, norms: true, ..Included::default() });
        assert_eq!(some.to_string(), "head,norms");
        assert_eq!(some.to_string().parse::<Included>().unwrap(), some);
        assert!("norm".parse::<Included>().unwrap_err().contains("`norm`"));
    }
}
