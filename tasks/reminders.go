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
	Queued      int // reminders recorded to be sent (DispatchReminders sends them)
	Superseded  int // earlier offsets whose time had passed when a later one was due: not sent
	Silenced    int // members who turned reminders off (notify off)
	NeverTalked int // members who never wrote to the bot
	Blocked     int // members who blocked the bot
}

// reminderBatch is how many due expiries one query reads.
const reminderBatch = 5000

// QueueReminders finds, for every member, the instants their points expire
// at within the longest reminder offset, and records one reminder per member,
// instant and offset once its time has come: only the latest offset due (a
// member whose 30-day reminder was not sent yet when the 7-day one is due gets
// the 7-day one). Lots expiring at one instant are told together. Members who
// turned reminders off, never talked to the bot or blocked it are skipped and
// counted. The primary key of expiry_reminders makes a rerun, or a second
// instance, record nothing twice. DispatchReminders hands the recorded
// reminders on as messages.
func (s *Service) QueueReminders(ctx context.Context) (ReminderRun, error) {
	var run ReminderRun
	offsets := s.prog.Expiry.Reminders // longest first
	if len(offsets) == 0 {
		return run, nil
	}
	now := s.now()
	horizon := offsets[0].After(now, s.prog.Location)
	// One pass over the expiries within the longest offset (the due-lots
	// index); what to record is written every reminderBatch rows.
	rows, err := s.pool.Query(ctx, `SELECT d.member_id, d.expires_at, d.points, m.notify, m.unreachable, m.last_platform IS NULL
		FROM (SELECT l.member_id, l.expires_at, sum(l.remaining)::bigint AS points FROM lots l
		      WHERE l.state = 'active' AND l.expires_at > $1 AND l.expires_at <= $2
		      GROUP BY l.member_id, l.expires_at) d
		JOIN members m ON m.id = d.member_id`, now, horizon)
	if err != nil {
		return run, fmt.Errorf("read due expiries: %w", err)
	}
	defer rows.Close()
	// Batches are recorded by the writers while the read goes on.
	var mu sync.Mutex
	var firstErr error
	batches := make(chan []dueExpiry, 2)
	var wg sync.WaitGroup
	for range reminderWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				var part ReminderRun
				start := time.Now()
				err := s.recordReminders(ctx, b, now, &part)
				// Leave the machine to the awards for a while between batches.
				time.Sleep(time.Duration(float64(time.Since(start)) * reminderPause))
				mu.Lock()
				run.Queued += part.Queued
				run.Superseded += part.Superseded
				run.Silenced += part.Silenced
				run.NeverTalked += part.NeverTalked
				run.Blocked += part.Blocked
				if err != nil && firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	send := func(b []dueExpiry) {
		if len(b) > 0 {
			batches <- b
		}
	}
	batch := make([]dueExpiry, 0, reminderBatch)
	var readErr error
	for rows.Next() {
		var d dueExpiry
		if err := rows.Scan(&d.member, &d.expires, &d.points, &d.notify, &d.unreachable, &d.neverTalk); err != nil {
			readErr = fmt.Errorf("read due expiries: %w", err)
			break
		}
		if batch = append(batch, d); len(batch) == cap(batch) {
			send(batch)
			batch = make([]dueExpiry, 0, reminderBatch)
		}
	}
	if readErr == nil {
		if err := rows.Err(); err != nil {
			readErr = fmt.Errorf("read due expiries: %w", err)
		}
	}
	if readErr == nil {
		send(batch)
	}
	close(batches)
	wg.Wait()
	if readErr != nil {
		return run, readErr
	}
	return run, firstErr
}

// reminderWriters record batches of reminders while the read goes on, each
// pausing reminderPause of a batch's time after it. Measured at a million
// members with awards running: one writer pausing a quarter recorded them in
// 22.6 s with awards at 1217/s; two pausing a half took 19.3 s with awards at
// 1074/s.
const (
	reminderWriters = 1
	reminderPause   = 0.25
)

// dueExpiry is points of a member expiring at one instant, with whether the
// member can be reminded.
type dueExpiry struct {
	member                         int64
	expires                        time.Time
	points                         int64
	notify, unreachable, neverTalk bool
}

// Reminder statuses (expiry_reminders.status).
const (
	remindPending     = "pending"
	remindQueued      = "queued"
	remindSuperseded  = "superseded"
	remindLate        = "late"
	remindSilenced    = "silenced"
	remindNeverTalked = "never_talked"
	remindBlocked     = "blocked"
)

// recordReminders records the reminders whose time has come for a batch of
// due expiries, in one set-based insert: the one to send (pending, or the
// reason it is skipped) and the earlier offsets it supersedes. Rows recorded
// before are left as they are and not counted again.
func (s *Service) recordReminders(ctx context.Context, batch []dueExpiry, now time.Time, run *ReminderRun) error {
	offsets, loc := s.prog.Expiry.Reminders, s.prog.Location
	var rec struct {
		members, points     []int64
		expires, remindAts  []time.Time
		reminders, statuses []string
	}
	add := func(d dueExpiry, offset string, at time.Time, status string) {
		rec.members, rec.points, rec.expires = append(rec.members, d.member), append(rec.points, d.points), append(rec.expires, d.expires)
		rec.reminders, rec.remindAts, rec.statuses = append(rec.reminders, offset), append(rec.remindAts, at), append(rec.statuses, status)
	}
	for _, d := range batch {
		// The offsets whose time has come, longest first; the last is the
		// one to send.
		last := -1
		for i, o := range offsets {
			if !o.Before(d.expires, loc).After(now) {
				last = i
			}
		}
		if last < 0 {
			continue
		}
		status := remindPending
		switch {
		case !d.notify:
			status = remindSilenced
		case d.neverTalk:
			status = remindNeverTalked
		case d.unreachable:
			status = remindBlocked
		}
		add(d, offsets[last].String(), offsets[last].Before(d.expires, loc), status)
		// Earlier offsets that were never sent are not sent late.
		for _, o := range offsets[:last] {
			add(d, o.String(), o.Before(d.expires, loc), remindSuperseded)
		}
	}
	if len(rec.members) == 0 {
		return nil
	}
	rows, err := s.pool.Query(ctx, `WITH ins AS (
			INSERT INTO expiry_reminders (member_id, expires_at, reminder, remind_at, points, status, created_at)
			SELECT m, e, r, a, p, st, $7 FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::timestamptz[], $5::bigint[], $6::text[])
				AS x(m, e, r, a, p, st)
			ON CONFLICT DO NOTHING RETURNING status)
		SELECT status, count(*) FROM ins GROUP BY status`,
		rec.members, rec.expires, rec.reminders, rec.remindAts, rec.points, rec.statuses, now)
	if err != nil {
		return fmt.Errorf("record reminders: %w", err)
	}
	counters := map[string]*int{remindPending: &run.Queued, remindSuperseded: &run.Superseded,
		remindSilenced: &run.Silenced, remindNeverTalked: &run.NeverTalked, remindBlocked: &run.Blocked}
	var status string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&status, &n}, func() error {
		*counters[status] += n
		return nil
	})
	if err != nil {
		return fmt.Errorf("record reminders: %w", err)
	}
	return nil
}

// ReminderWindow is how many reminders may wait in the outbound queue at
// once. A run may record a million; the platforms take some tens a second,
// so DispatchReminders hands them on a window at a time instead of filling
// Redis with a million jobs.
const ReminderWindow = 1000

// dispatchBatch is how many recorded reminders one transaction hands on.
const dispatchBatch = 500

// DispatchRun counts what one DispatchReminders did.
type DispatchRun struct {
	Handed     int // outbound messages recorded and handed to the queue
	Superseded int // a later reminder for the same instant was recorded meanwhile
	Late       int // the points expired before the reminder could go
	Silenced   int // the member turned reminders off since
	Blocked    int // the member blocked the bot since
}

// DispatchReminders turns recorded reminders into outbound messages, the
// most overdue first, until ReminderWindow messages wait to be sent or none
// is left. Each reminder becomes one message (its dedupe key is the
// reminder's) to the platform the member used last, in their language as it
// is now; one whose member turned reminders off or blocked the bot since, or
// whose points already expired, is skipped. Two dispatchers at once take
// different reminders.
func (s *Service) DispatchReminders(ctx context.Context) (DispatchRun, error) {
	var run DispatchRun
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
		run.Silenced += part.Silenced
		run.Blocked += part.Blocked
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
	rows, err := tx.Query(ctx, `SELECT r.member_id, r.expires_at, r.reminder, r.points,
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
		case !notify:
			status, run.Silenced = remindSilenced, run.Silenced+1
		case unreachable:
			status, run.Blocked = remindBlocked, run.Blocked+1
		case userID == "":
			status = remindNeverTalked // merged into another member by /link since
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

// handAll hands messages to the queue from a few goroutines at once (a run
// may record a million reminders).
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

// userOrNone fills the outbound row's recipient for members nobody can reach
// (the row records the skip; the table needs a user or a chat).
func userOrNone(id string) string {
	if id == "" {
		return "0"
	}
	return id
}
