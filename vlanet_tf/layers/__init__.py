"""VLANet's Keras layers (and the TGA baseline's), one per file; importing this registers them for loading."""

from vlanet_tf.layers.cascaded_cross_modal_attention import CascadedCrossModalAttention
from vlanet_tf.layers.clip_encoder import ClipEncoder
from vlanet_tf.layers.dense_attention import DenseAttention
from vlanet_tf.layers.proposal_builder import ProposalBuilder, proposal_windows
from vlanet_tf.layers.query_encoder import QueryEncoder
from vlanet_tf.layers.surrogate_select import SurrogateSelect
from vlanet_tf.layers.text_guided_attention import TextGuidedAttention
from vlanet_tf.layers.window_ranking import WindowRanking

__all__ = [
    "CascadedCrossModalAttention",
    "ClipEncoder",
    "DenseAttention",
    "ProposalBuilder",
    "QueryEncoder",
    "SurrogateSelect",
    "TextGuidedAttention",
    "WindowRanking",
    "proposal_windows",
]
