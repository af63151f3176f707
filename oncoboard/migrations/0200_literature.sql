-- Literature store: evidence documents, their passages with MiniLM embeddings, registered sources.
-- The three-level index (tumour type -> modality -> evidence level) is what the retriever filters on
-- before ranking; arrays carry the finer feature tags.

CREATE TABLE IF NOT EXISTS literature_documents (
    doc_id          text PRIMARY KEY,
    title           text NOT NULL,
    norm_title      text NOT NULL,
    year            integer,
    tumour_type     text NOT NULL DEFAULT 'other',   -- oncoboard.domain.Site vocabulary
    modality        text,                            -- the leading modality
    modalities      text[] NOT NULL DEFAULT '{}',
    settings        text[] NOT NULL DEFAULT '{}',
    biomarkers      text[] NOT NULL DEFAULT '{}',
    drugs           text[] NOT NULL DEFAULT '{}',
    population_tags text[] NOT NULL DEFAULT '{}',
    tags            text[] NOT NULL DEFAULT '{}',
    evidence_level  text,
    trial           text,
    language        text NOT NULL DEFAULT 'en',
    source          text NOT NULL,                   -- trial | guideline | pubmed | user
    origin          text NOT NULL,                   -- the file or registered source it came from
    content_hash    text NOT NULL,
    pmid            text,
    doi             text,
    body            jsonb NOT NULL,
    ingested_at     timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX IF NOT EXISTS literature_documents_pmid ON literature_documents (pmid) WHERE pmid IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS literature_documents_doi ON literature_documents (lower(doi)) WHERE doi IS NOT NULL;
CREATE INDEX IF NOT EXISTS literature_documents_norm_title ON literature_documents (norm_title);
CREATE INDEX IF NOT EXISTS literature_documents_hash ON literature_documents (content_hash);
CREATE INDEX IF NOT EXISTS literature_documents_tree
    ON literature_documents (tumour_type, modality, evidence_level, year);
CREATE INDEX IF NOT EXISTS literature_documents_biomarkers ON literature_documents USING gin (biomarkers);
CREATE INDEX IF NOT EXISTS literature_documents_tags ON literature_documents USING gin (tags);
CREATE INDEX IF NOT EXISTS literature_documents_settings ON literature_documents USING gin (settings);

CREATE TABLE IF NOT EXISTS literature_chunks (
    chunk_id    text PRIMARY KEY,
    doc_id      text NOT NULL REFERENCES literature_documents(doc_id) ON DELETE CASCADE,
    seq         integer NOT NULL,
    text        text NOT NULL,
    n_tokens    integer NOT NULL,
    embedding   vector(384) NOT NULL,
    UNIQUE (doc_id, seq)
);

CREATE INDEX IF NOT EXISTS literature_chunks_doc ON literature_chunks (doc_id);
CREATE INDEX IF NOT EXISTS literature_chunks_embedding
    ON literature_chunks USING hnsw (embedding vector_cosine_ops);

-- Sources that `update()` re-reads incrementally (the shipped cards are always included).
CREATE TABLE IF NOT EXISTS literature_sources (
    path             text PRIMARY KEY,
    kind             text NOT NULL,                  -- jsonl | medline
    registered_at    timestamptz NOT NULL DEFAULT now(),
    last_ingested_at timestamptz,
    last_sha256      text
);

-- One row; bumped by every write so per-process lexical indexes know when to rebuild.
CREATE TABLE IF NOT EXISTS literature_state (
    id          integer PRIMARY KEY CHECK (id = 1),
    generation  bigint NOT NULL DEFAULT 0
);
INSERT INTO literature_state (id, generation) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
