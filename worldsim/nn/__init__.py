"""Shared vision backbones: ViT (FiLM, TokenLearner), sparse MoE (V-MoE, LIMoE, Task-MoE) and
expert-/data-parallel sharding. Models return ``(output, aux)``; aux carries router losses
(``aux_loss``) and metrics."""

from worldsim.nn.moe import (Experts, MoeConfig, MoeMlp, NoisyTopKRouter, Routing,
                             compute_capacity, dispatch_einsum, dispatch_gather, importance_loss,
                             load_loss, moe_layer_indices, route_top_k)
from worldsim.nn.multimodal_moe import (ExtractedTaskMlp, LimoeMlp, TaskMoeMlp, build_moe_mlp,
                                        entropy_losses, extract_task_network)
from worldsim.nn.sharding import (batch_sharding, global_batch, make_mesh, make_train_step,
                                  shard_state, state_shardings)
from worldsim.nn.tokenlearner import TokenFuser, TokenLearnerV1, TokenLearnerV11, token_learner
from worldsim.nn.vit import (VARIANTS, Encoder, EncoderBlock, FiLM, MAPHead, MlpBlock,
                             VisionTransformer, posemb_sincos_2d, vit_variant)

__all__ = [
    "VARIANTS", "Encoder", "EncoderBlock", "Experts", "ExtractedTaskMlp", "FiLM", "LimoeMlp",
    "MAPHead", "MlpBlock", "MoeConfig", "MoeMlp", "NoisyTopKRouter", "Routing", "TaskMoeMlp",
    "TokenFuser", "TokenLearnerV1", "TokenLearnerV11", "VisionTransformer", "batch_sharding",
    "build_moe_mlp", "compute_capacity", "dispatch_einsum", "dispatch_gather", "entropy_losses",
    "extract_task_network", "global_batch", "importance_loss", "load_loss", "make_mesh",
    "make_train_step", "moe_layer_indices", "posemb_sincos_2d", "route_top_k", "shard_state",
    "state_shardings", "token_learner", "vit_variant",
]
