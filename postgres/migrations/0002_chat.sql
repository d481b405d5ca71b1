-- What the chat surface needs of members: their reminder choice, whether a
-- platform can still reach them, the member an account was merged into by
-- /link, and the one-time link codes themselves.

ALTER TABLE members
    ADD COLUMN notify      boolean NOT NULL DEFAULT true,
    ADD COLUMN unreachable boolean NOT NULL DEFAULT false,
    ADD COLUMN merged_into bigint REFERENCES members (id);

-- A code from /link on one platform, redeemed by /link <code> on the other.
CREATE TABLE link_codes (
    code        text PRIMARY KEY,
    member_id   bigint NOT NULL REFERENCES members (id),
    platform    text NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    used_by     bigint REFERENCES members (id)
);
CREATE INDEX link_codes_member_idx ON link_codes (member_id) WHERE used_at IS NULL;

-- ledger_link joins the member who redeems p_code with the member who asked for
-- it. Outcomes: 'linked' (survivor, its available balance), 'already' (the two
-- are one member already, e.g. a retried /link), 'bad_code' (unknown, used or
-- expired), 'same' (the code's own member redeems it), 'conflict' (both have an
-- identity on the same platform). The survivor is the older member; the other's
-- identities move to it, and its points move through two ledger transactions
-- (link_out, link_in) whose lots keep their earn time and expiry.
CREATE FUNCTION ledger_link(p_code text, p_caller bigint, p_now timestamptz)
RETURNS TABLE (outcome text, survivor bigint, balance_after bigint) LANGUAGE plpgsql AS $$
DECLARE
    c record;
    owner bigint;
    caller bigint;
    keep bigint;
    gone bigint;
    moved bigint;
    out_id bigint;
    in_id bigint;
    bal bigint;
BEGIN
    SELECT * INTO c FROM link_codes WHERE code = p_code FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'bad_code'::text, NULL::bigint, NULL::bigint; RETURN;
    END IF;
    -- Either side may have been merged into another member meanwhile (two people
    -- redeeming each other's codes at once): act on the members they are now.
    owner := coalesce((SELECT merged_into FROM members WHERE id = c.member_id), c.member_id);
    caller := coalesce((SELECT merged_into FROM members WHERE id = p_caller), p_caller);
    IF c.used_at IS NOT NULL OR owner = caller THEN
        IF owner = caller AND (c.used_at IS NOT NULL OR owner <> c.member_id OR caller <> p_caller) THEN
            -- A retried /link, or the accounts were joined the other way round.
            RETURN QUERY SELECT 'already'::text, owner, NULL::bigint; RETURN;
        END IF;
        IF c.used_at IS NOT NULL THEN
            RETURN QUERY SELECT 'bad_code'::text, NULL::bigint, NULL::bigint; RETURN;
        END IF;
        RETURN QUERY SELECT 'same'::text, NULL::bigint, NULL::bigint; RETURN;
    END IF;
    IF c.expires_at <= p_now THEN
        RETURN QUERY SELECT 'bad_code'::text, NULL::bigint, NULL::bigint; RETURN;
    END IF;
    -- Both rows, in id order, so two links racing over the same members cannot deadlock.
    PERFORM 1 FROM members WHERE id IN (owner, caller) ORDER BY id FOR UPDATE;
    -- A merge may have committed while we waited for the locks.
    IF EXISTS (SELECT 1 FROM members WHERE id IN (owner, caller) AND merged_into IS NOT NULL) THEN
        RAISE EXCEPTION 'member merged concurrently' USING ERRCODE = 'TL004';
    END IF;
    IF EXISTS (SELECT 1 FROM identities a JOIN identities b ON a.platform = b.platform
               WHERE a.member_id = owner AND b.member_id = caller) THEN
        RETURN QUERY SELECT 'conflict'::text, NULL::bigint, NULL::bigint; RETURN;
    END IF;
    keep := least(owner, caller);
    gone := greatest(owner, caller);
    UPDATE link_codes SET used_at = p_now, used_by = caller WHERE code = p_code;
    UPDATE identities SET member_id = keep WHERE member_id = gone;
    UPDATE members k SET locale = coalesce(k.locale, g.locale), merged_into = NULL
    FROM members g WHERE k.id = keep AND g.id = gone;
    -- Members merged into gone earlier now point at keep too: one hop always
    -- reaches a live member.
    UPDATE members SET merged_into = keep WHERE id = gone OR merged_into = gone;

    SELECT coalesce(sum(remaining), 0) INTO moved FROM lots WHERE member_id = gone AND state = 'active';
    -- The survivor's available balance once the points arrive (moved lots past
    -- their expiry arrive unavailable, as they were).
    SELECT ledger_available(m.id, m.balance, p_now) INTO bal FROM members m WHERE m.id = keep;
    bal := bal + (SELECT coalesce(sum(remaining), 0) FROM lots WHERE member_id = gone AND state = 'active'
                  AND (expires_at IS NULL OR expires_at > p_now));
    IF moved > 0 THEN
        INSERT INTO txns (member_id, kind, points, reason, idempotency_key, fingerprint, balance_after, created_at)
        VALUES (gone, 'link_out', -moved, 'linked into member ' || keep, 'tally:link:' || p_code || ':out',
                sha256(convert_to('link_out:' || p_code, 'UTF8')), 0, p_now)
        RETURNING id INTO out_id;
        INSERT INTO txns (member_id, kind, points, reason, idempotency_key, fingerprint, balance_after, created_at)
        VALUES (keep, 'link_in', moved, 'linked from member ' || gone, 'tally:link:' || p_code || ':in',
                sha256(convert_to('link_in:' || p_code, 'UTF8')), bal, p_now)
        RETURNING id INTO in_id;
        INSERT INTO lot_consumptions (txn_id, lot_id, member_id, amount)
        SELECT out_id, id, gone, remaining FROM lots WHERE member_id = gone AND state = 'active' AND remaining > 0;
        INSERT INTO lots (member_id, txn_id, amount, remaining, earned_at, expires_at)
        SELECT keep, in_id, remaining, remaining, earned_at, expires_at FROM lots
        WHERE member_id = gone AND state = 'active' AND remaining > 0
        ORDER BY expires_at NULLS LAST, earned_at, id;
        UPDATE lots SET remaining = 0, state = 'spent' WHERE member_id = gone AND state = 'active';
        -- The two transactions pass the points through the adjustments account.
        INSERT INTO postings (txn_id, account, member_id, amount) VALUES
            (out_id, 'member', gone, -moved), (out_id, 'adjustments', gone, moved),
            (in_id, 'member', keep, moved), (in_id, 'adjustments', keep, -moved);
        UPDATE members SET balance = balance - moved WHERE id = gone;
        UPDATE members SET balance = balance + moved WHERE id = keep;
    END IF;
    RETURN QUERY SELECT 'linked'::text, keep, bal;
END $$;

-- Points credited to a member merged by /link would reach nobody (its
-- identities moved to the survivor). The ledger resolves merged members to
-- their survivor first; this refuses what slips past, naming the survivor.
CREATE FUNCTION ledger_refuse_merged() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'member % was merged into %', OLD.id, OLD.merged_into
        USING ERRCODE = 'TL005', DETAIL = OLD.merged_into::text;
END $$;
CREATE TRIGGER members_refuse_merged BEFORE UPDATE OF balance ON members
    FOR EACH ROW WHEN (OLD.merged_into IS NOT NULL AND NEW.balance > OLD.balance)
    EXECUTE FUNCTION ledger_refuse_merged();
