-- Seasons and leaderboards. A member's score in a season is what they earned
-- while in it: awards and task payments (later purchases), not prizes, not
-- links, not spending or expiry. Scores are written by a trigger on txns, so a
-- score changes in the same transaction as the ledger posting it counts.

-- One season is open at a time. A season covers [starts_at, ends_at); ends_at
-- is NULL for a season that runs until an operator closes it. Closing freezes
-- the standings (status 'closing'), opens the next season, pays the prizes and
-- then marks the season 'closed'.
CREATE TABLE seasons (
    id          bigserial PRIMARY KEY,
    number      bigint NOT NULL UNIQUE CHECK (number > 0),
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz,
    status      text NOT NULL CHECK (status IN ('open', 'closing', 'closed')),
    auto_join   boolean NOT NULL,            -- every member is in (join = "auto")
    prizes      bigint[] NOT NULL DEFAULT '{}',
    closed_at   timestamptz,
    CHECK (ends_at IS NULL OR ends_at >= starts_at)
);
CREATE UNIQUE INDEX seasons_one_open_idx ON seasons ((true)) WHERE status = 'open';

-- Members who joined with `season join` (opt-in programmes); they stay in every
-- later season until they leave.
CREATE TABLE season_members (
    member_id  bigint PRIMARY KEY REFERENCES members (id),
    joined_at  timestamptz NOT NULL
);

-- A member's score in a season. reached_at is when the score was last raised:
-- of two equal scores, the one reached first ranks higher. joined is false
-- while the member has left. xid is the transaction that last changed the
-- row (the Redis board finds changes by it); rev counts the row's changes,
-- which are serialized by the row's lock, so it rises in commit order and
-- tells the board which of two copies of a row is newer.
CREATE TABLE season_scores (
    season_id   bigint NOT NULL REFERENCES seasons (id),
    member_id   bigint NOT NULL,
    score       bigint NOT NULL DEFAULT 0 CHECK (score >= 0),
    reached_at  timestamptz NOT NULL,
    joined      boolean NOT NULL DEFAULT true,
    xid         xid8 NOT NULL DEFAULT pg_current_xact_id(),
    rev         bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (season_id, member_id)
) WITH (fillfactor = 80);
CREATE INDEX season_scores_xid_idx ON season_scores (season_id, xid);
-- No index orders scores: every award would pay to keep it, and the ranks are
-- read from Redis; Postgres sorts only at a close (a top-N sort) and while a
-- Redis board is being rebuilt.

-- The final standings of a closed season, best first, with the prize each rank
-- earned and the transaction that paid it (paid with the key
-- 'tally:season:<season>:rank:<rank>').
CREATE TABLE season_standings (
    season_id   bigint NOT NULL REFERENCES seasons (id),
    rank        integer NOT NULL CHECK (rank > 0),
    -- No foreign key to members: its check would lock a winner's row while
    -- the close pauses the ledger, and a debit holding that row deadlocks.
    member_id   bigint NOT NULL,
    score       bigint NOT NULL,
    reached_at  timestamptz NOT NULL,
    prize       bigint NOT NULL DEFAULT 0,
    prize_txn   bigint,
    PRIMARY KEY (season_id, rank)
);

-- Closing a season late counts what was earned between its end and the close
-- towards the next season; this finds those transactions by time.
CREATE INDEX txns_created_brin ON txns USING brin (created_at);

-- season_score adds a statement's earning transactions to the open season's
-- scores of the members in it. Members' rows are already locked by the ledger
-- function that inserted the transactions, in id order, so the upsert (in
-- member order) takes no new lock another award could wait on.
CREATE FUNCTION season_score() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    s record;
BEGIN
    SELECT id, starts_at, ends_at, auto_join INTO s FROM seasons WHERE status = 'open';
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    INSERT INTO season_scores AS sc (season_id, member_id, score, reached_at)
    SELECT s.id, n.member_id, sum(n.points), max(n.created_at)
    FROM new_txns n
    -- The open season takes what commits while it is open and was earned
    -- before its end: an award whose time was read before a close but that
    -- committed after it counts in the next season, once. Earnings after the
    -- end that commit before a late close are copied into the next season
    -- by the close.
    WHERE n.kind IN ('award', 'task', 'purchase') AND n.points > 0
      AND (s.ends_at IS NULL OR n.created_at < s.ends_at)
      AND (s.auto_join OR EXISTS (SELECT 1 FROM season_members m WHERE m.member_id = n.member_id))
    GROUP BY n.member_id
    ORDER BY n.member_id
    ON CONFLICT (season_id, member_id) DO UPDATE
        SET score = sc.score + excluded.score, reached_at = excluded.reached_at, xid = pg_current_xact_id(), rev = sc.rev + 1
        WHERE sc.joined;
    RETURN NULL;
END $$;

CREATE TRIGGER txns_season_score AFTER INSERT ON txns
    REFERENCING NEW TABLE AS new_txns FOR EACH STATEMENT EXECUTE FUNCTION season_score();

-- Operators close seasons too; the audit log names them.
ALTER TABLE audit_log DROP CONSTRAINT audit_log_action_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_action_check
    CHECK (action IN ('award', 'deduct', 'approve', 'reject', 'close_season'));

-- The language the member's chat app last reported, for what Tally says on its
-- own (prizes, later reminders) when the member never chose one with /lang.
ALTER TABLE members ADD COLUMN seen_locale text;

-- Claims and moderator limits count every account /link joined into a member.
CREATE INDEX members_merged_into_idx ON members (merged_into) WHERE merged_into IS NOT NULL;

-- Where a sent message went ("<chat>:<message>"), for posts edited later: a
-- claim decided on one platform updates its review post on the other.
ALTER TABLE outbound ADD COLUMN sent_ref text NOT NULL DEFAULT '';
