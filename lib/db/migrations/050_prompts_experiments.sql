-- Prompts with immutable numbered versions and movable labels; experiments that split traffic
-- between prompt versions or models; feedback on any answer. Outcomes (latency, cost, errors)
-- are not copied here: reports join the usage ledger by request id.

-- One row per prompt name. `latest_version` hands out version numbers: creating a version bumps
-- it in one statement, so two concurrent creates get 2 and 3, never 2 twice.
CREATE TABLE prompts (
    name            text PRIMARY KEY,
    latest_version  integer NOT NULL,
    created_by      text,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- A version is either a text template or a list of chat messages ({role, content}), with
-- `{{variable}}` placeholders; `variables` are the placeholders' names, derived when it is created.
CREATE TABLE prompt_versions (
    name            text NOT NULL REFERENCES prompts (name) ON DELETE CASCADE,
    version         integer NOT NULL CHECK (version >= 1),
    kind            text NOT NULL CHECK (kind IN ('text', 'chat')),
    template        text,
    messages        jsonb,
    model           text,
    params          jsonb NOT NULL DEFAULT '{}'::jsonb,  -- temperature, max_tokens, response_format, tools
    variables       text[] NOT NULL DEFAULT '{}',
    commit_message  text,
    created_by      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version),
    CHECK ((kind = 'text') = (template IS NOT NULL) AND (kind = 'chat') = (messages IS NOT NULL))
);

-- Versions are immutable: what answered a request yesterday is what the ledger says it was.
-- There is no update path in the code, and the database refuses one too.
CREATE FUNCTION prompt_versions_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'prompt versions are immutable; create a new version instead';
END $$;
CREATE TRIGGER prompt_versions_immutable BEFORE UPDATE ON prompt_versions
    FOR EACH ROW EXECUTE FUNCTION prompt_versions_immutable();

-- A label (production, staging, any name) points at one version. `latest` is not stored: it
-- always means the highest version.
CREATE TABLE prompt_labels (
    name        text NOT NULL,
    label       text NOT NULL,
    version     integer NOT NULL,
    moved_by    text,
    moved_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, label),
    FOREIGN KEY (name, version) REFERENCES prompt_versions (name, version) ON DELETE CASCADE
);

-- Every label move: who, when, from which version (NULL: the label was new) to which.
CREATE TABLE prompt_label_moves (
    id            bigserial PRIMARY KEY,
    name          text NOT NULL REFERENCES prompts (name) ON DELETE CASCADE,
    label         text NOT NULL,
    from_version  integer,
    to_version    integer NOT NULL,
    moved_by      text,
    moved_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX prompt_label_moves_idx ON prompt_label_moves (name, id);

-- Which prompt version a provider call ran (NULL: the request named no stored prompt).
ALTER TABLE usage_ledger ADD COLUMN prompt_name text, ADD COLUMN prompt_version integer;

-- An experiment's definition is fixed once it starts (only a draft may be replaced), so hashing
-- (experiment, unit) gives every instance the same variant for the same unit, forever.
-- `variants`: [{name, weight, prompt: {name, version} | null, model | null, params}].
CREATE TABLE experiments (
    name         text PRIMARY KEY,
    description  text NOT NULL DEFAULT '',
    unit         text NOT NULL CHECK (unit IN ('user', 'conversation', 'request')),
    metric       text NOT NULL CHECK (metric IN ('feedback_score', 'positive_feedback_rate', 'latency',
                                                 'cost', 'error_rate')),
    variants     jsonb NOT NULL,
    control      text NOT NULL,
    status       text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'running', 'paused', 'stopped')),
    winner       text,
    created_by   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    stopped_at   timestamptz,
    updated_by   text,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- The first time a unit met the experiment, once per unit (INSERT ... ON CONFLICT DO NOTHING).
-- Counted per variant against the weights for the sample-ratio-mismatch check.
CREATE TABLE experiment_exposures (
    experiment   text NOT NULL REFERENCES experiments (name) ON DELETE CASCADE,
    unit         text NOT NULL,
    variant      text NOT NULL,
    request_id   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (experiment, unit)
);

-- Every request an experiment served, so outcomes (usage_ledger) and feedback join to a variant
-- and a unit by request id. Request ids are only unique per caller (a client may send its own
-- x-request-id), hence the key.
CREATE TABLE experiment_requests (
    caller       text NOT NULL,
    request_id   text NOT NULL,
    experiment   text NOT NULL REFERENCES experiments (name) ON DELETE CASCADE,
    variant      text NOT NULL,
    unit         text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (caller, request_id)
);
CREATE INDEX experiment_requests_experiment_idx ON experiment_requests (experiment, variant);

-- One piece of feedback per request and caller, updatable. `score` is what was sent on its
-- `scale`; `value` is it normalized to 0..1 (thumbs -1/1 -> 0/1, 1..5 -> (score - 1) / 4).
CREATE TABLE feedback (
    caller       text NOT NULL,
    request_id   text NOT NULL,
    score        double precision NOT NULL,
    scale        text NOT NULL CHECK (scale IN ('thumbs', '0-1', '1-5')),
    value        double precision NOT NULL CHECK (value >= 0 AND value <= 1),
    comment      text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (caller, request_id)
);
