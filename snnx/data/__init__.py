"""Data: bit-packed on-device spike storage, dataset loaders and batching."""

from .nmnist import bin_frames as bin_frames, load_nmnist as load_nmnist, read_events as read_events
from .packing import (
    PackedSpikes as PackedSpikes,
    pack_spikes as pack_spikes,
    unpack_spikes as unpack_spikes,
)
from .shd import BinningInfo as BinningInfo, bin_events as bin_events, load_shd as load_shd
