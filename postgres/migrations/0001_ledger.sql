-- The points ledger. Invariants are listed in DESIGN.md; ledger.Check verifies them.
--
-- members.balance is the member account's balance and the only row an award locks.
-- System accounts (issued, redeemed, expired, adjustments, partners) have no row of
-- their own: their balances are sums over postings, so no two members' awards ever
-- wait on a shared row.
--
-- The ledger rows (txns, postings, lots, lot_consumptions) carry no foreign keys:
-- only the ledger_* functions below write them, always with the ids they have just
-- locked or created, and ledger.Check verifies that no row is orphaned. Foreign-key
-- triggers cost five index lookups and a row lock per award, about 40% of a batch.

CREATE TABLE members (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL DEFAULT '',
    locale      text,
    -- At most 2^53−1, the largest integer every JSON client reads exactly.
    balance     bigint NOT NULL DEFAULT 0 CHECK (balance >= 0 AND balance <= 9007199254740991),
    created_at  timestamptz NOT NULL
);

CREATE TABLE identities (
    platform    text NOT NULL CHECK (platform IN ('telegram', 'discord', 'console')),
    -- Digits without leading zeros, so one user cannot appear under two ids.
    user_id     text NOT NULL CHECK (user_id ~ '^[1-9][0-9]{0,19}$'),
    member_id   bigint NOT NULL REFERENCES members (id),
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (platform, user_id)
);
CREATE INDEX identities_member_idx ON identities (member_id);

-- One row per ledger transaction. idempotency_key is unique: inserting it is what
-- makes a retry apply once. fingerprint is a hash of the request's parameters;
-- balance_after is the member's available balance right after this transaction,
-- kept so a replay returns exactly the original answer. expires_at is the expiry
-- of the lot a credit created, kept for history.
CREATE TABLE txns (
    id               bigserial PRIMARY KEY,
    member_id        bigint NOT NULL,
    kind             text NOT NULL,
    points           bigint NOT NULL CHECK (points <> 0),
    reason           text NOT NULL DEFAULT '',
    idempotency_key  text NOT NULL UNIQUE,
    fingerprint      bytea NOT NULL,
    balance_after    bigint NOT NULL,
    expires_at       timestamptz,
    corrects         bigint REFERENCES txns (id),
    created_at       timestamptz NOT NULL
);
CREATE INDEX txns_member_idx ON txns (member_id, id DESC);

-- Double entry: the postings of a transaction sum to zero. The account is
-- 'member' (the member's own account) or a system account; every posting carries
-- the member it concerns, so system totals aggregate without a shared row.
CREATE TABLE postings (
    txn_id     bigint NOT NULL,
    account    text NOT NULL CHECK (account IN ('member', 'issued', 'redeemed', 'expired', 'adjustments', 'partners')),
    member_id  bigint NOT NULL,
    amount     bigint NOT NULL CHECK (amount <> 0),
    PRIMARY KEY (txn_id, account)
);

-- Earned points. remaining falls as spending consumes the lot (soonest expiry
-- first, then oldest); the consumptions say which transaction took how much.
CREATE TABLE lots (
    id          bigserial PRIMARY KEY,
    member_id   bigint NOT NULL,
    txn_id      bigint NOT NULL,
    amount      bigint NOT NULL CHECK (amount > 0),
    remaining   bigint NOT NULL CHECK (remaining >= 0 AND remaining <= amount),
    state       text NOT NULL DEFAULT 'active' CHECK (state IN ('pending', 'active', 'spent', 'expired')),
    earned_at   timestamptz NOT NULL,
    expires_at  timestamptz
) WITH (fillfactor = 80);
-- Spending reads a member's unspent lots in FIFO order. The predicates name state,
-- not remaining, so a partial spend (remaining changes, state does not) is a HOT
-- update that touches no index; a lot leaves them when it becomes spent or expired.
CREATE INDEX lots_unspent_idx ON lots (member_id, expires_at, earned_at, id) WHERE state IN ('pending', 'active');
-- The expiry sweep reads due lots.
CREATE INDEX lots_due_idx ON lots (expires_at) WHERE state = 'active' AND expires_at IS NOT NULL;

CREATE TABLE lot_consumptions (
    txn_id     bigint NOT NULL,
    lot_id     bigint NOT NULL,
    member_id  bigint NOT NULL,
    amount     bigint NOT NULL CHECK (amount > 0),
    PRIMARY KEY (txn_id, lot_id)
);
CREATE INDEX lot_consumptions_lot_idx ON lot_consumptions (lot_id);

-- History is append-only (invariant 6): corrections are new transactions.
CREATE FUNCTION ledger_forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger history is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'TL006';
END $$;
CREATE TRIGGER txns_append_only BEFORE UPDATE OR DELETE ON txns
    FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();
CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE ON postings
    FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();
CREATE TRIGGER lot_consumptions_append_only BEFORE UPDATE OR DELETE ON lot_consumptions
    FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();

-- Custom SQLSTATEs the Go side maps to domain errors:
--   TL001 the idempotency key exists already (replay or conflict: read it and compare)
--   TL002 insufficient points
--   TL003 member not found
--   TL004 a concurrent request created the same identity (retry the lookup)

-- ledger_available: the member's spendable points at p_now. The balance row
-- still counts lots whose expiry passed but that no sweep has expired yet.
CREATE FUNCTION ledger_available(p_member bigint, p_balance bigint, p_now timestamptz)
RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT p_balance - coalesce((
        SELECT sum(remaining) FROM lots
        WHERE member_id = p_member AND state = 'active'
          AND expires_at IS NOT NULL AND expires_at <= p_now), 0)::bigint
$$;

-- ledger_ensure_members returns the member of every (platform, user_id),
-- creating the missing ones. Concurrent creators of one identity: the loser
-- raises TL004 and the caller retries (then finds the winner's member).
CREATE FUNCTION ledger_ensure_members(p_platforms text[], p_user_ids text[], p_now timestamptz)
RETURNS TABLE (platform text, user_id text, member_id bigint) LANGUAGE plpgsql AS $$
DECLARE
    n_missing bigint;
    n_created bigint;
BEGIN
    WITH want AS (
        SELECT DISTINCT w.p, w.u FROM unnest(p_platforms, p_user_ids) AS w(p, u)
        WHERE NOT EXISTS (SELECT 1 FROM identities i WHERE i.platform = w.p AND i.user_id = w.u)
    ), fresh AS MATERIALIZED (
        SELECT want.p, want.u, nextval('members_id_seq') AS id FROM want ORDER BY want.p, want.u
    ), m AS (
        INSERT INTO members (id, created_at) SELECT fresh.id, p_now FROM fresh
    ), i AS (
        INSERT INTO identities (platform, user_id, member_id, created_at)
        SELECT fresh.p, fresh.u, fresh.id, p_now FROM fresh
        ON CONFLICT DO NOTHING
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM fresh), (SELECT count(*) FROM i) INTO n_missing, n_created;
    IF n_created < n_missing THEN
        RAISE EXCEPTION 'identity created concurrently' USING ERRCODE = 'TL004';
    END IF;
    RETURN QUERY
    SELECT i.platform, i.user_id, i.member_id FROM identities i
    JOIN unnest(p_platforms, p_user_ids) AS w(p, u) ON i.platform = w.p AND i.user_id = w.u;
END $$;

-- ledger_credit credits p_points to the member from system account p_source and
-- records a lot. One statement, so one round trip; it locks only the member's row.
CREATE FUNCTION ledger_credit(p_member bigint, p_points bigint, p_kind text, p_source text,
    p_reason text, p_key text, p_fp bytea, p_expires timestamptz, p_now timestamptz)
RETURNS TABLE (txn_id bigint, balance_after bigint) LANGUAGE plpgsql AS $$
DECLARE
    bal bigint;
    avail bigint;
    tid bigint;
BEGIN
    UPDATE members SET balance = balance + p_points WHERE id = p_member RETURNING balance INTO bal;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % not found', p_member USING ERRCODE = 'TL003';
    END IF;
    avail := ledger_available(p_member, bal, p_now);
    -- A lot whose expiry is already past at p_now is not available.
    IF p_expires IS NOT NULL AND p_expires <= p_now THEN
        avail := avail - p_points;
    END IF;
    INSERT INTO txns (member_id, kind, points, reason, idempotency_key, fingerprint, balance_after, expires_at, created_at)
    VALUES (p_member, p_kind, p_points, p_reason, p_key, p_fp, avail, p_expires, p_now)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id INTO tid;
    IF tid IS NULL THEN
        RAISE EXCEPTION 'idempotency key exists' USING ERRCODE = 'TL001';
    END IF;
    INSERT INTO postings (txn_id, account, member_id, amount)
    VALUES (tid, 'member', p_member, p_points), (tid, p_source, p_member, -p_points);
    INSERT INTO lots (member_id, txn_id, amount, remaining, earned_at, expires_at)
    VALUES (p_member, tid, p_points, p_points, p_now, p_expires);
    RETURN QUERY SELECT tid, avail;
END $$;

-- ledger_debit takes p_points from the member's unexpired lots, soonest expiry
-- first, then oldest, into system account p_sink. Short of points: TL002 and
-- nothing is written, so the key stays free for a later retry.
CREATE FUNCTION ledger_debit(p_member bigint, p_points bigint, p_kind text, p_sink text,
    p_reason text, p_key text, p_fp bytea, p_now timestamptz)
RETURNS TABLE (txn_id bigint, balance_after bigint) LANGUAGE plpgsql AS $$
DECLARE
    bal bigint;
    avail bigint;
    tid bigint;
    need bigint := p_points;
    take bigint;
    lot record;
BEGIN
    SELECT balance INTO bal FROM members WHERE id = p_member FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % not found', p_member USING ERRCODE = 'TL003';
    END IF;
    -- A replay must answer as the original did even if the balance is short now.
    IF EXISTS (SELECT 1 FROM txns WHERE idempotency_key = p_key) THEN
        RAISE EXCEPTION 'idempotency key exists' USING ERRCODE = 'TL001';
    END IF;
    avail := ledger_available(p_member, bal, p_now);
    IF avail < p_points THEN
        RAISE EXCEPTION 'insufficient points: % available, % asked', avail, p_points
            USING ERRCODE = 'TL002', DETAIL = avail::text;
    END IF;
    INSERT INTO txns (member_id, kind, points, reason, idempotency_key, fingerprint, balance_after, created_at)
    VALUES (p_member, p_kind, -p_points, p_reason, p_key, p_fp, avail - p_points, p_now)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id INTO tid;
    IF tid IS NULL THEN
        RAISE EXCEPTION 'idempotency key exists' USING ERRCODE = 'TL001';
    END IF;
    FOR lot IN
        SELECT id, remaining FROM lots
        WHERE member_id = p_member AND state = 'active'
          AND (expires_at IS NULL OR expires_at > p_now)
        ORDER BY expires_at NULLS LAST, earned_at, id
    LOOP
        take := least(lot.remaining, need);
        UPDATE lots SET remaining = remaining - take,
                        state = CASE WHEN remaining - take = 0 THEN 'spent' ELSE state END
        WHERE id = lot.id;
        INSERT INTO lot_consumptions (txn_id, lot_id, member_id, amount) VALUES (tid, lot.id, p_member, take);
        need := need - take;
        EXIT WHEN need = 0;
    END LOOP;
    IF need <> 0 THEN
        -- The balance row and the lots disagree: never write a half-spent debit.
        RAISE EXCEPTION 'ledger inconsistent: member % lots short by %', p_member, need;
    END IF;
    UPDATE members SET balance = balance - p_points WHERE id = p_member;
    INSERT INTO postings (txn_id, account, member_id, amount)
    VALUES (tid, 'member', p_member, -p_points), (tid, p_sink, p_member, p_points);
    RETURN QUERY SELECT tid, avail - p_points;
END $$;

-- ledger_credit_batch credits many members in one statement. It locks the
-- members first; then every item whose key exists is returned with exists set
-- (the caller reads it as a replay or a conflict) and the others are credited.
-- Only a request that inserts one of the same keys in the instant between the
-- check and the insert makes it raise TL001, and the caller retries.
CREATE FUNCTION ledger_credit_batch(p_members bigint[], p_points bigint[], p_reasons text[],
    p_keys text[], p_fps bytea[], p_expires timestamptz[], p_kind text, p_source text, p_now timestamptz)
RETURNS TABLE (idx bigint, txn_id bigint, balance_after bigint, key_exists boolean) LANGUAGE plpgsql AS $$
DECLARE
    n_locked int;
    n_fresh int;
    n_inserted int;
    known bigint[];
BEGIN
    -- Lock the members' rows in id order so concurrent batches cannot deadlock.
    -- The statements below start after the locks are held, so they read the
    -- latest balances and every key committed before.
    PERFORM 1 FROM members WHERE id = ANY (p_members) ORDER BY id FOR UPDATE;
    GET DIAGNOSTICS n_locked = ROW_COUNT;
    IF n_locked <> (SELECT count(DISTINCT m) FROM unnest(p_members) AS m) THEN
        RAISE EXCEPTION 'member not found' USING ERRCODE = 'TL003';
    END IF;

    -- One probe of the key index per item, kept for the statement below.
    SELECT coalesce(array_agg(u.idx ORDER BY u.idx), '{}') INTO known
    FROM unnest(p_keys) WITH ORDINALITY AS u(k, idx)
    WHERE EXISTS (SELECT 1 FROM txns t WHERE t.idempotency_key = u.k);
    n_fresh := cardinality(p_keys) - cardinality(known);
    RETURN QUERY SELECT k.idx, NULL::bigint, NULL::bigint, true FROM unnest(known) AS k(idx);

    RETURN QUERY
    WITH expired AS (
        -- Points past their expiry that no sweep has expired yet (ledger_available,
        -- set-based: one scan for the batch instead of one call per item).
        SELECT l.member_id, sum(l.remaining) AS total FROM lots l
        WHERE l.member_id = ANY (p_members) AND l.state = 'active'
          AND l.expires_at IS NOT NULL AND l.expires_at <= p_now
        GROUP BY l.member_id
    ), fresh AS (
        SELECT u.* FROM unnest(p_members, p_points, p_reasons, p_keys, p_fps, p_expires) WITH ORDINALITY
             AS u(m, p, r, k, f, e, idx)
        WHERE u.idx <> ALL (known)
    ), items AS MATERIALIZED (
        SELECT f.idx, f.m, f.p, f.r, f.k, f.f, f.e,
               (mb.balance - coalesce(x.total, 0)
                 + sum(CASE WHEN f.e IS NOT NULL AND f.e <= p_now THEN 0 ELSE f.p END)
                       OVER (PARTITION BY f.m ORDER BY f.idx))::bigint AS bal
        FROM fresh f
        JOIN members mb ON mb.id = f.m
        LEFT JOIN expired x ON x.member_id = f.m
    ), ins AS (
        -- In key order: two batches sharing keys take them in the same order.
        INSERT INTO txns (member_id, kind, points, reason, idempotency_key, fingerprint, balance_after, expires_at, created_at)
        SELECT items.m, p_kind, items.p, items.r, items.k, items.f, items.bal, items.e, p_now
        FROM items ORDER BY items.k
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING id, idempotency_key
    ), j AS MATERIALIZED (
        SELECT items.*, ins.id AS tid FROM items JOIN ins ON ins.idempotency_key = items.k
    ), post AS (
        INSERT INTO postings (txn_id, account, member_id, amount)
        SELECT j.tid, a.account, j.m, CASE a.account WHEN 'member' THEN j.p ELSE -j.p END
        FROM j CROSS JOIN (VALUES ('member'), (p_source)) AS a(account)
    ), lot AS (
        INSERT INTO lots (member_id, txn_id, amount, remaining, earned_at, expires_at)
        SELECT j.m, j.tid, j.p, j.p, p_now, j.e FROM j ORDER BY j.idx
    ), bal AS (
        UPDATE members mb SET balance = mb.balance + s.total
        FROM (SELECT j.m, sum(j.p)::bigint AS total FROM j GROUP BY j.m) s
        WHERE mb.id = s.m
    )
    SELECT j.idx, j.tid, j.bal, false FROM j ORDER BY j.idx;
    GET DIAGNOSTICS n_inserted = ROW_COUNT;
    IF n_inserted <> n_fresh THEN
        RAISE EXCEPTION 'idempotency key exists' USING ERRCODE = 'TL001';
    END IF;
END $$;
