package tasks

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// KindExpiryReminder tells a member that points expire soon (params: points,
// expires — Unix seconds).
const KindExpiryReminder = "expiry_reminder"

// ReminderRun counts what one run of the reminders did.
type ReminderRun struct {
	Queued      int // reminders recorded and handed to the queue
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
// counted. Each reminder's outbound key makes a rerun, or a second instance,
// record nothing twice.
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
	rows, err := s.pool.Query(ctx, `SELECT d.member_id, d.expires_at, d.points, m.notify, m.unreachable,
			coalesce(i.platform, ''), coalesce(i.user_id, ''), coalesce(m.locale, m.seen_locale, '')
		FROM (SELECT l.member_id, l.expires_at, sum(l.remaining)::bigint AS points FROM lots l
		      WHERE l.state = 'active' AND l.expires_at > $1 AND l.expires_at <= $2
		      GROUP BY l.member_id, l.expires_at) d
		JOIN members m ON m.id = d.member_id
		-- A member has an identity or three: look them up by member, whatever
		-- the planner thinks of the identities' platforms.
		LEFT JOIN LATERAL (SELECT x.platform, x.user_id FROM identities x
		                   WHERE x.member_id = m.id AND x.platform = m.last_platform LIMIT 1) i ON true`, now, horizon)
	if err != nil {
		return run, fmt.Errorf("read due expiries: %w", err)
	}
	defer rows.Close()
	// Batches are recorded by two writers while the read goes on.
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
		if err := rows.Scan(&d.member, &d.expires, &d.points, &d.notify, &d.unreachable, &d.platform, &d.userID, &d.locale); err != nil {
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

// reminderWriters record batches of reminders at once, each pausing
// reminderPause of a batch's time after it.
const (
	reminderWriters = 2
	reminderPause   = 0.5
)

// dueExpiry is points of a member expiring at one instant, with how to
// reach the member.
type dueExpiry struct {
	member                   int64
	expires                  time.Time
	points                   int64
	notify, unreachable      bool
	platform, userID, locale string
}

// recordReminders records the reminders whose time has come for a batch of
// due expiries (one insert) and hands the ones to send to the queue.
func (s *Service) recordReminders(ctx context.Context, batch []dueExpiry, now time.Time, run *ReminderRun) error {
	offsets, loc := s.prog.Expiry.Reminders, s.prog.Location
	// One set-based insert per batch: the reminders to send (pending) or
	// to skip, and the earlier offsets they supersede.
	var rec struct {
		keys, platforms, users, locales, statuses, whys []string
		members                                         []int64
		params                                          [][]byte
	}
	counted := map[string]*int{}
	add := func(key string, d dueExpiry, status, why string, params []byte, counter *int) {
		platform := d.platform
		if platform == "" {
			platform = "none"
		}
		locale := d.locale
		if locale == "" {
			locale = s.prog.DefaultLocale
		}
		rec.keys, rec.members, rec.platforms = append(rec.keys, key), append(rec.members, d.member), append(rec.platforms, platform)
		rec.users, rec.locales = append(rec.users, userOrNone(d.userID)), append(rec.locales, locale)
		rec.statuses, rec.whys, rec.params = append(rec.statuses, status), append(rec.whys, why), append(rec.params, params)
		if counter != nil {
			counted[key] = counter
		}
	}
	for _, d := range batch {
		// The offsets whose time has come, longest first; the last is the one to send.
		var dueOffsets []string
		for _, o := range offsets {
			if !o.Before(d.expires, loc).After(now) {
				dueOffsets = append(dueOffsets, o.String())
			}
		}
		if len(dueOffsets) == 0 {
			continue
		}
		key := func(offset string) string { return fmt.Sprintf("remind:%d:%d:%s", d.member, d.expires.Unix(), offset) }
		status, why, counter := "pending", "", (*int)(nil)
		switch {
		case !d.notify:
			status, why, counter = Skipped, "reminders are off", &run.Silenced
		case d.userID == "":
			status, why, counter = Skipped, "never talked to the bot", &run.NeverTalked
		case d.unreachable:
			status, why, counter = Skipped, "blocked the bot", &run.Blocked
		}
		params := []byte(`{"points":` + strconv.FormatInt(d.points, 10) + `,"expires":` + strconv.FormatInt(d.expires.Unix(), 10) + `}`)
		add(key(dueOffsets[len(dueOffsets)-1]), d, status, why, params, counter)
		// Earlier offsets that were never sent are not sent late.
		for _, o := range dueOffsets[:len(dueOffsets)-1] {
			add(key(o), d, Skipped, "a later reminder was due", []byte("{}"), &run.Superseded)
		}
	}
	if len(rec.keys) == 0 {
		return nil
	}
	rows, err := s.pool.Query(ctx, `INSERT INTO outbound (dedupe_key, member_id, platform, user_id, locale, kind, params, status, last_error, created_at, done_at)
		SELECT k, m, p, u, l, $1, pa, st, w, $2, CASE WHEN st = 'pending' THEN NULL ELSE $2::timestamptz END
		FROM unnest($3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::jsonb[], $9::text[], $10::text[])
			AS r(k, m, p, u, l, pa, st, w)
		ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, dedupe_key, status`,
		KindExpiryReminder, now, rec.keys, rec.members, rec.platforms, rec.users, rec.locales, rec.params, rec.statuses, rec.whys)
	if err != nil {
		return fmt.Errorf("record reminders: %w", err)
	}
	var queued []int64
	for rows.Next() {
		var id int64
		var key, status string
		if err := rows.Scan(&id, &key, &status); err != nil {
			rows.Close()
			return fmt.Errorf("record reminders: %w", err)
		}
		if status == "pending" {
			queued = append(queued, id)
		} else if c := counted[key]; c != nil {
			*c++
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("record reminders: %w", err)
	}
	run.Queued += len(queued)
	s.handAll(ctx, queued)
	return nil
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
