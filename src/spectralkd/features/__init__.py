"""Getting B×C×H×W maps out of models; creating models and loading local checkpoints."""
from spectralkd.features.maps import (
    MapsAndLogits, block_maps, intermediates_and_final, is_module_names, map_names, module_maps, num_block_maps,
    resolve_indices, take_maps, tokens_to_map,
)
from spectralkd.features.models import create_model, load_into, load_state_dict_file, parse_model_kwargs

__all__ = [
    "MapsAndLogits", "block_maps", "intermediates_and_final", "map_names", "module_maps", "num_block_maps",
    "resolve_indices", "tokens_to_map", "is_module_names", "take_maps", "create_model", "load_into", "load_state_dict_file", "parse_model_kwargs",
]
