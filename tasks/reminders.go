package tasks

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// KindExpiryReminder tells a member that points expire soon (params: points,
// expires — Unix seconds).
const KindExpiryReminder = "expiry_reminder"

// ReminderRun counts what one run of the reminders recorded.
type ReminderRun struct {
	Recorded    int // reminders recorded to be sent (DispatchReminders hands them on)
	Superseded  int // earlier offsets whose time had passed when a later one was due: not sent
	Silenced    int // members who turned reminders off (notify off)
	NeverTalked int // members who never wrote to the bot
	Blocked     int // members who blocked the bot
}

// reminderChunk is how many member ids one statement records reminders for.
const reminderChunk = 20000

// reminderPause is how long recording pauses after each chunk, as a share of
// the chunk's time, leaving the machine to the awards for a while.
const reminderPause = 0.25

// RecordReminders finds, for every member, the instants their points expire
// at within the longest reminder offset, and records one reminder per member,
// instant and offset once its time has come: only the latest offset due (a
// member whose 30-day reminder was not sent yet when the 7-day one is due gets
// the 7-day one; the 30-day one is recorded as superseded). Lots expiring at
// one instant are told together. Members who turned reminders off, never
// talked to the bot or blocked it are skipped and counted. The primary key of
// expiry_reminders makes a rerun, or a second instance, record nothing twice.
// DispatchReminders hands the recorded reminders on as messages.
//
// Postgres does the work, a range of member ids per statement: a million
// members took 7.3 s (with nothing else running and no pauses) where reading
// the expiries into Go and writing the reminders back took 9.3 s and 1.8 s
// of the client's CPU.
func (s *Service) RecordReminders(ctx context.Context) (ReminderRun, error) {
	var run ReminderRun
	offsets := s.prog.Expiry.Reminders
	if len(offsets) == 0 {
		return run, nil
	}
	now := s.now()
	// Past the longest offset nothing is due. A week more covers months:
	// 31 March less a month is 28 February, three days after 28 February
	// plus a month.
	var horizon time.Time
	labels, months, fixed := make([]string, len(offsets)), make([]int32, len(offsets)), make([]int64, len(offsets))
	for i, o := range offsets {
		labels[i], months[i], fixed[i] = o.String(), int32(o.Months), o.Fixed.Microseconds()
		if h := o.After(now, s.prog.Location).Add(7 * 24 * time.Hour); h.After(horizon) {
			horizon = h
		}
	}
	var first, last int64
	if err := s.pool.QueryRow(ctx, "SELECT coalesce(min(id), 1), coalesce(max(id), 0) FROM members").Scan(&first, &last); err != nil {
		return run, fmt.Errorf("record reminders: %w", err)
	}
	for from := first; from <= last; from += reminderChunk {
		start := time.Now()
		if err := s.recordReminders(ctx, from, min(from+reminderChunk-1, last), now, horizon, labels, months, fixed, &run); err != nil {
			return run, err
		}
		time.Sleep(time.Duration(float64(time.Since(start)) * reminderPause))
	}
	return run, nil
}

// Reminder statuses (expiry_reminders.status).
const (
	remindPending     = "pending"
	remindQueued      = "queued"
	remindSuperseded  = "superseded"
	remindLate        = "late"
	remindNothingLeft = "nothing_left"
	remindSilenced    = "silenced"
	remindNeverTalked = "never_talked"
	remindBlocked     = "blocked"
)

// recordReminders records the reminders whose time has come for the members
// with ids from..to, in one statement: for each member and instant (second)
// their points expire at, the due offset with the latest reminder time (pending,
// or the reason it is skipped) and the other due offsets, superseded. An
// offset's reminder time is the expiry less the offset, months counted on the
// calendar in the programme's timezone. Rows recorded before are left as they
// are and not counted again.
func (s *Service) recordReminders(ctx context.Context, from, to int64, now, horizon time.Time,
	labels []string, months []int32, fixed []int64, run *ReminderRun) error {
	rows, err := s.pool.Query(ctx, `WITH o AS (
			SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[]) WITH ORDINALITY AS o(reminder, months, fixed_us, ord)
		), d AS (
			SELECT l.member_id, date_trunc('second', l.expires_at) AS expires_at, sum(l.remaining)::bigint AS points FROM lots l
			WHERE l.member_id BETWEEN $4 AND $5 AND l.state = 'active' AND l.expires_at > $6 AND l.expires_at <= $7
			GROUP BY l.member_id, date_trunc('second', l.expires_at)
		), due AS (
			SELECT d.member_id, d.expires_at, d.points, o.reminder, r.remind_at,
				row_number() OVER (PARTITION BY d.member_id, d.expires_at ORDER BY r.remind_at DESC, o.ord DESC) AS nth
			FROM d CROSS JOIN o
			CROSS JOIN LATERAL (SELECT CASE WHEN o.months <> 0
				THEN ((d.expires_at AT TIME ZONE $8) - make_interval(months => o.months)) AT TIME ZONE $8
				ELSE d.expires_at END - o.fixed_us * interval '1 microsecond' AS remind_at) r
			WHERE r.remind_at <= $6
		), ins AS (
			INSERT INTO expiry_reminders (member_id, expires_at, reminder, remind_at, points, status, created_at)
			SELECT due.member_id, due.expires_at, due.reminder, due.remind_at, due.points,
				CASE WHEN due.nth > 1 THEN 'superseded'
				     WHEN NOT m.notify THEN 'silenced'
				     WHEN m.last_platform IS NULL THEN 'never_talked'
				     WHEN m.unreachable THEN 'blocked'
				     ELSE 'pending' END, $6
			FROM due JOIN members m ON m.id = due.member_id
			ON CONFLICT DO NOTHING RETURNING status)
		SELECT status, count(*) FROM ins GROUP BY status`,
		// Planned for each range: a cached generic plan scans every due
		// lot for each range (the range of ids is no longer known to be
		// narrow), which made a million members take 17 s instead of 10.
		pgx.QueryExecModeExec,
		labels, months, fixed, from, to, now, horizon, s.prog.Location.String())
	if err != nil {
		return fmt.Errorf("record reminders: %w", err)
	}
	counters := map[string]*int{remindPending: &run.Recorded, remindSuperseded: &run.Superseded,
		remindSilenced: &run.Silenced, remindNeverTalked: &run.NeverTalked, remindBlocked: &run.Blocked}
	var status string
	var n int
	if _, err := pgx.ForEachRow(rows, []any{&status, &n}, func() error {
		*counters[status] += n
		return nil
	}); err != nil {
		return fmt.Errorf("record reminders: %w", err)
	}
	return nil
}

// ReminderWindow is how many reminders may wait in the outbound queue at
// once. A run may record a million; the platforms take some tens a second,
// so DispatchReminders hands them on a window at a time instead of filling
// Redis with a million jobs.
const ReminderWindow = 1000

// dispatchLock is the session advisory lock one dispatcher holds at a time.
const dispatchLock = "hashtextextended('tally:reminders:dispatch', 0)"

// dispatchBatch is how many recorded reminders one transaction hands on.
const dispatchBatch = 500

// DispatchRun counts what one DispatchReminders did.
type DispatchRun struct {
	Handed      int  // outbound messages recorded and handed to the queue
	Superseded  int  // a later reminder for the same instant was recorded meanwhile
	Late        int  // the points expired before the reminder could go
	NothingLeft int  // the points were spent, or re-dated by activity, since
	Silenced    int  // the member turned reminders off since
	Blocked     int  // the member blocked the bot since
	NeverTalked int  // the member's account was joined to another by /link since
	Busy        bool // another dispatcher was at work: this one did nothing
}

// DispatchReminders turns recorded reminders into outbound messages, the
// most overdue first, until ReminderWindow messages wait to be sent or none
// is left. Each reminder becomes one message (its dedupe key is the
// reminder's) naming the points still left to expire at its instant, to the
// platform the member used last, in their language as it is now. One is
// skipped when, since it was recorded, a later reminder for its instant was,
// its points expired, were spent or were re-dated by activity, or its member
// turned reminders off, blocked the bot or was joined to another account.
// One dispatcher works at a time (an advisory lock); another returns at once
// with Busy set.
func (s *Service) DispatchReminders(ctx context.Context) (DispatchRun, error) {
	var run DispatchRun
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return run, fmt.Errorf("hand on reminders: %w", err)
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock("+dispatchLock+")").Scan(&locked); err != nil {
		return run, fmt.Errorf("hand on reminders: %w", err)
	}
	if !locked {
		run.Busy = true
		return run, nil
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock("+dispatchLock+")")
	var waiting int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM outbound
			WHERE status = 'pending' AND kind = $1 LIMIT $2) w`, KindExpiryReminder, s.window).Scan(&waiting); err != nil {
		return run, fmt.Errorf("count waiting reminders: %w", err)
	}
	for room := s.window - waiting; room > 0; {
		var ids []int64
		var n int
		var part DispatchRun
		err := s.inTx(ctx, func(tx pgx.Tx) error {
			var err error
			part = DispatchRun{} // counted again if the transaction is retried
			ids, n, err = s.dispatchBatch(ctx, tx, min(room, dispatchBatch), &part)
			return err
		})
		if err != nil {
			return run, err
		}
		run.Handed += part.Handed
		run.Superseded += part.Superseded
		run.Late += part.Late
		run.NothingLeft += part.NothingLeft
		run.Silenced += part.Silenced
		run.Blocked += part.Blocked
		run.NeverTalked += part.NeverTalked
		s.handAll(ctx, ids)
		if n == 0 {
			break
		}
		room -= len(ids)
	}
	return run, nil
}

// dispatchBatch hands on up to limit pending reminders in tx and returns the
// messages to hand to the queue and how many reminders it took.
func (s *Service) dispatchBatch(ctx context.Context, tx pgx.Tx, limit int, run *DispatchRun) ([]int64, int, error) {
	now := s.now()
	// What is left to expire at the reminder's instant (its second) is read
	// again: spending, or activity under the inactivity policy, may have
	// taken it since.
	rows, err := tx.Query(ctx, `SELECT r.member_id, r.expires_at, r.reminder,
			coalesce((SELECT sum(x.remaining) FROM lots x WHERE x.member_id = r.member_id AND x.state = 'active'
			          AND x.expires_at >= r.expires_at AND x.expires_at < r.expires_at + interval '1 second'), 0)::bigint,
			EXISTS (SELECT 1 FROM expiry_reminders l WHERE l.member_id = r.member_id
			        AND l.expires_at = r.expires_at AND l.remind_at > r.remind_at),
			m.notify, m.unreachable, coalesce(i.platform, ''), coalesce(i.user_id, ''), coalesce(m.locale, m.seen_locale, '')
		FROM (SELECT * FROM expiry_reminders WHERE status = 'pending' ORDER BY remind_at LIMIT $1 FOR UPDATE SKIP LOCKED) r
		JOIN members m ON m.id = r.member_id
		LEFT JOIN LATERAL (SELECT x.platform, x.user_id FROM identities x
		                   WHERE x.member_id = m.id AND x.platform = m.last_platform LIMIT 1) i ON true`, limit)
	if err != nil {
		return nil, 0, fmt.Errorf("read reminders to send: %w", err)
	}
	var upd struct {
		members                 []int64
		expires                 []time.Time
		offsets, statuses, keys []string
	}
	var msg struct {
		keys, platforms, users, locales []string
		members                         []int64
		params                          [][]byte
	}
	var (
		member                           int64
		expires                          time.Time
		offset, platform, userID, locale string
		points                           int64
		later, notify, unreachable       bool
	)
	_, err = pgx.ForEachRow(rows, []any{&member, &expires, &offset, &points, &later, &notify, &unreachable, &platform, &userID, &locale}, func() error {
		status := remindQueued
		switch {
		case later:
			status, run.Superseded = remindSuperseded, run.Superseded+1
		case !expires.After(now):
			status, run.Late = remindLate, run.Late+1
		case points == 0:
			status, run.NothingLeft = remindNothingLeft, run.NothingLeft+1
		case !notify:
			status, run.Silenced = remindSilenced, run.Silenced+1
		case unreachable:
			status, run.Blocked = remindBlocked, run.Blocked+1
		case userID == "":
			status, run.NeverTalked = remindNeverTalked, run.NeverTalked+1 // joined to another member by /link since
		}
		key := "remind:" + strconv.FormatInt(member, 10) + ":" + strconv.FormatInt(expires.Unix(), 10) + ":" + offset
		upd.members, upd.expires, upd.offsets, upd.statuses, upd.keys = append(upd.members, member), append(upd.expires, expires),
			append(upd.offsets, offset), append(upd.statuses, status), append(upd.keys, key)
		if status == remindQueued {
			if locale == "" {
				locale = s.prog.DefaultLocale
			}
			msg.keys = append(msg.keys, key)
			msg.members, msg.platforms, msg.users, msg.locales = append(msg.members, member), append(msg.platforms, platform),
				append(msg.users, userID), append(msg.locales, locale)
			msg.params = append(msg.params, []byte(`{"points":`+strconv.FormatInt(points, 10)+`,"expires":`+strconv.FormatInt(expires.Unix(), 10)+`}`))
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("read reminders to send: %w", err)
	}
	if len(upd.members) == 0 {
		return nil, 0, nil
	}
	// A message recorded under the key before (by an earlier version, which
	// wrote reminders to the outbound table directly) is the reminder's.
	var ids []int64
	outbound := map[string]int64{}
	if len(msg.keys) > 0 {
		rows, err := tx.Query(ctx, `INSERT INTO outbound (dedupe_key, member_id, platform, user_id, locale, kind, params, created_at)
			SELECT k, m, p, u, l, $1, pa, $2 FROM unnest($3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::jsonb[])
				AS x(k, m, p, u, l, pa)
			ON CONFLICT (dedupe_key) DO UPDATE SET dedupe_key = excluded.dedupe_key
			RETURNING id, dedupe_key, status`,
			KindExpiryReminder, now, msg.keys, msg.members, msg.platforms, msg.users, msg.locales, msg.params)
		if err != nil {
			return nil, 0, fmt.Errorf("record reminder messages: %w", err)
		}
		var id int64
		var key, status string
		if _, err := pgx.ForEachRow(rows, []any{&id, &key, &status}, func() error {
			outbound[key] = id
			if status == "pending" {
				ids = append(ids, id)
			}
			return nil
		}); err != nil {
			return nil, 0, fmt.Errorf("record reminder messages: %w", err)
		}
		run.Handed += len(ids)
	}
	obs := make([]*int64, len(upd.members))
	for i := range upd.members {
		if upd.statuses[i] == remindQueued {
			id := outbound[upd.keys[i]]
			obs[i] = &id
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE expiry_reminders r SET status = x.st, outbound_id = x.ob
		FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::bigint[]) AS x(m, e, o, st, ob)
		WHERE r.member_id = x.m AND r.expires_at = x.e AND r.reminder = x.o`,
		upd.members, upd.expires, upd.offsets, upd.statuses, obs); err != nil {
		return nil, 0, fmt.Errorf("mark reminders sent: %w", err)
	}
	return ids, len(upd.members), nil
}

// handAll hands messages to the queue from a few goroutines at once (a
// dispatch hands on up to a window of them).
func (s *Service) handAll(ctx context.Context, ids []int64) {
	const workers = 8
	var wg sync.WaitGroup
	next := make(chan int64)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range next {
				s.hand(ctx, "send", id, s.notify.Send)
			}
		}()
	}
	for _, id := range ids {
		next <- id
	}
	close(next)
	wg.Wait()
}
