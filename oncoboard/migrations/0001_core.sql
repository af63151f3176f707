-- Cases, reports and the hash-chained audit trace.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE IF NOT EXISTS cases (
    case_id      text PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now(),
    language     text NOT NULL,
    text_sha256  text NOT NULL,
    payload      bytea NOT NULL,          -- the de-identified case input, encrypted
    key_id       text NOT NULL
);

CREATE TABLE IF NOT EXISTS reports (
    case_id      text PRIMARY KEY REFERENCES cases(case_id) ON DELETE CASCADE,
    trace_id     text NOT NULL UNIQUE,
    status       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    payload      bytea NOT NULL,          -- the ConsultReport JSON, encrypted
    key_id       text NOT NULL
);

CREATE TABLE IF NOT EXISTS trace_events (
    trace_id     text NOT NULL,
    seq          integer NOT NULL,
    kind         text NOT NULL,           -- node_start, node_end, tool_call, model_call, decision
    name         text NOT NULL,
    at           text NOT NULL,           -- ISO-8601 UTC, exactly as hashed
    duration_ms  double precision,
    payload      bytea NOT NULL,          -- inputs/outputs/versions, encrypted
    key_id       text NOT NULL,
    prev_hash    text NOT NULL,
    hash         text NOT NULL,
    PRIMARY KEY (trace_id, seq)
);
CREATE INDEX IF NOT EXISTS trace_events_trace ON trace_events (trace_id);

CREATE TABLE IF NOT EXISTS traces (
    trace_id     text PRIMARY KEY,
    case_id      text NOT NULL,
    started_at   text NOT NULL,
    head_hash    text NOT NULL,
    n_events     integer NOT NULL
);
