-- The unit a product is sold in (the receipt's tag 2108, and whether a
-- fractional quantity is allowed: never for pieces).
ALTER TABLE products ADD COLUMN unit TEXT NOT NULL DEFAULT 'pcs'
    CHECK (unit IN ('pcs', 'g', 'kg', 'ml', 'l', 'm', 'm2', 'm3'));
