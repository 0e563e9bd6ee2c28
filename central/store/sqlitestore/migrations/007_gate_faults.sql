-- A gate's active faults as its last birth reported them: a JSON array of
-- {"kind","error","since","at"} (store.EncodeFaults), [] for none.
ALTER TABLE gates ADD COLUMN faults TEXT NOT NULL DEFAULT '[]';
