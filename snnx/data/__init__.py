"""Data: bit-packed on-device spike storage, dataset loaders and batching."""

from . import augment as augment, download as download, procedural as procedural, tonic as tonic
from .nmnist import bin_frames as bin_frames, load_nmnist as load_nmnist, read_events as read_events
from .packing import (
    PackedSpikes as PackedSpikes,
    pack_spikes as pack_spikes,
    unpack_spikes as unpack_spikes,
)
from .procedural import randman as randman, yin_yang as yin_yang
from .shd import BinningInfo as BinningInfo, bin_events as bin_events, load_shd as load_shd
from .timing import delay_patterns as delay_patterns
