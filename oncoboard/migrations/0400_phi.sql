-- The pseudonymisation mapping of a case (original surface -> pseudonym), encrypted; readable
-- only through the service for roles allowed to re-identify.
CREATE TABLE IF NOT EXISTS phi_mappings (
    case_id      text PRIMARY KEY REFERENCES cases(case_id) ON DELETE CASCADE,
    payload      bytea NOT NULL,
    key_id       text NOT NULL
);
