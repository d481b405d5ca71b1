-- Telegram update ids already handled, so an update Telegram delivers again
-- (after a crash, before the library confirmed it) is not answered twice.
-- Rows older than a day are deleted: Telegram keeps updates for 24 hours.
CREATE TABLE telegram_updates (
    update_id   bigint PRIMARY KEY,
    handled_at  timestamptz NOT NULL
);
CREATE INDEX telegram_updates_handled_idx ON telegram_updates (handled_at);
