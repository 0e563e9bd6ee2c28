-- A gate's active faults as its last birth reported them (see
-- sqlitestore's 007_gate_faults.sql).
ALTER TABLE gates ADD COLUMN faults jsonb NOT NULL DEFAULT '[]';
