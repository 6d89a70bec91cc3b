"""The contract: what RT-DETR's CDN builder does, stated once (the reference, its closed-form layout, the noise it draws, box arithmetic, tolerances, input validation, empty-batch conventions)."""
