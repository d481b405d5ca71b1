-- Discord interaction ids already answered over HTTP, so a captured signed
-- request replayed to any instance within the 5-minute window runs nothing.
-- Rows older than an hour are deleted now and then.
CREATE TABLE discord_interactions (
    interaction_id  text PRIMARY KEY,
    seen_at         timestamptz NOT NULL
);
CREATE INDEX discord_interactions_seen_idx ON discord_interactions (seen_at);
