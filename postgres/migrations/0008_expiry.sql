-- The expiry sweep: lots whose expiry has passed move their remaining points
-- to the 'expired' system account. Each sweep of a member is one ledger
-- transaction (key 'tally:expire:<the lowest lot id it expires>') with a
-- lot consumption per lot; a lot expires once because its state changes in
-- that transaction, under the member's row lock.

-- ledger_expire_due expires the due lots of up to p_members members (those
-- with the soonest-due lots first) and returns what it expired, a row per
-- lot. The members' rows are locked first, in id order, as debits do (a
-- member an award or another sweep holds is waited for: skipping it would make
-- a sweep that finds only held members report nothing due). Then one
-- statement expires all their due lots, set-based as batch awards are; lots
-- another sweep expired meanwhile are no longer due by then.
CREATE FUNCTION ledger_expire_due(p_now timestamptz, p_members int)
RETURNS TABLE (lot_id bigint, member_id bigint, points bigint, txn_id bigint, expires_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    ms bigint[];
BEGIN
    SELECT coalesce(array_agg(x.id ORDER BY x.id), '{}') INTO ms FROM (
        SELECT mb.id FROM members mb
        WHERE mb.id IN (SELECT d.member_id FROM lots d
                        WHERE d.state = 'active' AND d.expires_at IS NOT NULL AND d.expires_at <= p_now
                        ORDER BY d.expires_at LIMIT p_members * 10)
        ORDER BY mb.id
        LIMIT p_members
        FOR UPDATE OF mb) x;
    IF cardinality(ms) = 0 THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH due AS MATERIALIZED (
        SELECT d.id AS lot, d.member_id AS m, d.remaining AS r, d.expires_at AS e FROM lots d
        WHERE d.member_id = ANY (ms) AND d.state = 'active' AND d.expires_at IS NOT NULL AND d.expires_at <= p_now
        ORDER BY d.member_id, d.id
        FOR UPDATE
    ), per AS (
        SELECT due.m, min(due.lot) AS first, sum(due.r)::bigint AS total FROM due GROUP BY due.m
    ), bal AS (
        -- Due lots were not available before either: what the member can
        -- spend after the expiry is the balance without them.
        UPDATE members mb SET balance = mb.balance - per.total FROM per WHERE mb.id = per.m
        RETURNING mb.id, mb.balance
    ), ins AS (
        INSERT INTO txns (member_id, kind, points, reason, idempotency_key, fingerprint, balance_after, created_at)
        SELECT per.m, 'expiry', -per.total, 'points expired', 'tally:expire:' || per.first,
               sha256(convert_to('expire:' || per.first, 'UTF8')), bal.balance, p_now
        FROM per JOIN bal ON bal.id = per.m
        ORDER BY per.m
        RETURNING txns.id AS tid, txns.member_id AS mid
    ), j AS MATERIALIZED (
        SELECT due.*, ins.tid FROM due JOIN ins ON ins.mid = due.m
    ), post AS (
        INSERT INTO postings (txn_id, account, member_id, amount)
        SELECT ins.tid, a.account, ins.mid, CASE a.account WHEN 'member' THEN -per.total ELSE per.total END
        FROM ins JOIN per ON per.m = ins.mid CROSS JOIN (VALUES ('member'), ('expired')) AS a(account)
    ), cons AS (
        INSERT INTO lot_consumptions (txn_id, lot_id, member_id, amount) SELECT j.tid, j.lot, j.m, j.r FROM j
    ), upd AS (
        UPDATE lots l SET remaining = 0, state = 'expired' FROM j WHERE l.id = j.lot
    )
    SELECT j.lot, j.m, j.r, j.tid, j.e FROM j ORDER BY j.m, j.lot;
END $$;

-- The programme's expiry policy, written by serve at start (one row). Under
-- "inactivity" all of a member's points expire a while after their last
-- earning or spending: each such transaction moves the expiry of the member's
-- active lots to that while after it, in the same transaction.
CREATE TABLE expiry_policy (
    only_row      boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    policy        text NOT NULL CHECK (policy IN ('after_earn', 'inactivity', 'none')),
    after_months  integer NOT NULL DEFAULT 0 CHECK (after_months >= 0),
    after_fixed   interval NOT NULL DEFAULT '0',
    timezone      text NOT NULL DEFAULT 'UTC'
);

CREATE FUNCTION ledger_inactivity() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    p record;
BEGIN
    SELECT after_months, after_fixed, timezone INTO p FROM expiry_policy WHERE policy = 'inactivity';
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    -- Calendar months are added in the programme's timezone; a day past the
    -- end of the month is its last day (31 January + 1 month = 28 February).
    UPDATE lots l SET expires_at = ((a.at AT TIME ZONE p.timezone) + make_interval(months => p.after_months)) AT TIME ZONE p.timezone
                                   + p.after_fixed
    FROM (SELECT n.member_id, max(n.created_at) AS at FROM new_txns n
          WHERE n.kind IN ('award', 'task', 'prize', 'purchase', 'deduction')
          GROUP BY n.member_id) a
    WHERE l.member_id = a.member_id AND l.state = 'active';
    RETURN NULL;
END $$;

CREATE TRIGGER txns_inactivity AFTER INSERT ON txns
    REFERENCING NEW TABLE AS new_txns FOR EACH STATEMENT EXECUTE FUNCTION ledger_inactivity();

-- The platform the member last wrote to the bot from: reminders go there.
-- NULL for members who never talked to the bot (they get no reminders).
ALTER TABLE members ADD COLUMN last_platform text;
