-- The service: users and their API tokens, the access log, the job queue and its progress events,
-- and clinicians' scheme modifications.

CREATE TABLE IF NOT EXISTS users (
    user_id      bigserial PRIMARY KEY,
    name         text NOT NULL UNIQUE,
    role         text NOT NULL CHECK (role IN ('resident', 'attending', 'chief')),
    active       boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Only the SHA-256 of a token is stored: tokens are 256-bit random values, so a fast hash is
-- enough to make a leaked table useless, and lookups stay a single index probe.
CREATE TABLE IF NOT EXISTS api_tokens (
    token_id     bigserial PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    token_sha256 text NOT NULL UNIQUE,
    prefix       text NOT NULL,            -- first characters, to tell tokens apart in listings
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);

CREATE TABLE IF NOT EXISTS access_log (
    access_id    bigserial PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    user_id      bigint REFERENCES users(user_id) ON DELETE SET NULL,
    user_name    text,
    method       text NOT NULL,
    route        text NOT NULL,            -- the route template, e.g. /v1/consultations/{case_id}
    case_id      text,
    job_id       text,
    status_code  integer NOT NULL
);
CREATE INDEX IF NOT EXISTS access_log_case ON access_log (case_id) WHERE case_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS access_log_user ON access_log (user_id, at);

CREATE TABLE IF NOT EXISTS jobs (
    job_id       text PRIMARY KEY,
    status       text NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    payload      bytea NOT NULL,           -- the submitted case input, encrypted
    key_id       text NOT NULL,
    run          jsonb NOT NULL DEFAULT '{}'::jsonb,
    submitted_by bigint REFERENCES users(user_id) ON DELETE SET NULL,
    attempts     integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 3,
    locked_by    text,
    heartbeat_at timestamptz,
    trace_id     text,                     -- trace of the current attempt, written before it runs
    case_id      text,
    error        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz
);
CREATE INDEX IF NOT EXISTS jobs_claimable ON jobs (created_at) WHERE status IN ('queued', 'running');

-- Progress of a job, node by node, for live event streams (names and timings only, no payloads).
CREATE TABLE IF NOT EXISTS job_events (
    job_id       text NOT NULL REFERENCES jobs(job_id) ON DELETE CASCADE,
    attempt      integer NOT NULL,
    seq          integer NOT NULL,
    kind         text NOT NULL,
    name         text NOT NULL,
    at           text NOT NULL,
    duration_ms  double precision,
    PRIMARY KEY (job_id, attempt, seq)
);

CREATE TABLE IF NOT EXISTS scheme_modifications (
    modification_id bigserial PRIMARY KEY,
    case_id      text NOT NULL REFERENCES reports(case_id) ON DELETE CASCADE,
    kind         text NOT NULL,
    by_user      text NOT NULL,
    reason       text NOT NULL,
    before       bytea NOT NULL,           -- the scheme as it was, encrypted
    after        bytea NOT NULL,           -- the scheme as changed, encrypted
    key_id       text NOT NULL,
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS scheme_modifications_case ON scheme_modifications (case_id);
