package tasks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
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
	loc := s.prog.Location
	horizon := offsets[0].After(now, loc)
	var after struct {
		member  int64
		expires time.Time
	}
	for {
		rows, err := s.pool.Query(ctx, `WITH due AS (
				SELECT l.member_id, l.expires_at, sum(l.remaining)::bigint AS points FROM lots l
				WHERE l.state = 'active' AND l.expires_at > $1 AND l.expires_at <= $2
				  AND (l.member_id, l.expires_at) > ($3, $4)
				GROUP BY l.member_id, l.expires_at
				ORDER BY l.member_id, l.expires_at LIMIT $5)
			SELECT d.member_id, d.expires_at, d.points, m.notify, m.unreachable, coalesce(i.platform, ''), coalesce(i.user_id, ''),
			       coalesce(m.locale, m.seen_locale, '')
			FROM due d JOIN members m ON m.id = d.member_id
			LEFT JOIN identities i ON i.member_id = m.id AND i.platform = m.last_platform
			ORDER BY d.member_id, d.expires_at`, now, horizon, after.member, after.expires, reminderBatch)
		if err != nil {
			return run, fmt.Errorf("read due expiries: %w", err)
		}
		type due struct {
			member                   int64
			expires                  time.Time
			points                   int64
			notify, unreachable      bool
			platform, userID, locale string
		}
		batch, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (due, error) {
			var d due
			return d, r.Scan(&d.member, &d.expires, &d.points, &d.notify, &d.unreachable, &d.platform, &d.userID, &d.locale)
		})
		if err != nil {
			return run, fmt.Errorf("read due expiries: %w", err)
		}
		if len(batch) == 0 {
			return run, nil
		}
		after.member, after.expires = batch[len(batch)-1].member, batch[len(batch)-1].expires
		var queued []int64
		err = s.inTx(ctx, func(tx pgx.Tx) error {
			queued = queued[:0]
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
				key := func(offset string) string {
					return fmt.Sprintf("remind:%d:%d:%s", d.member, d.expires.Unix(), offset)
				}
				status, why := "pending", ""
				switch {
				case !d.notify:
					status, why = Skipped, "reminders are off"
				case d.userID == "":
					status, why = Skipped, "never talked to the bot"
				case d.unreachable:
					status, why = Skipped, "blocked the bot"
				}
				send := dueOffsets[len(dueOffsets)-1]
				platform := d.platform
				if platform == "" {
					platform = "none"
				}
				locale := d.locale
				if locale == "" {
					locale = s.prog.DefaultLocale
				}
				var id int64
				err := tx.QueryRow(ctx, `INSERT INTO outbound (dedupe_key, member_id, platform, user_id, locale, kind, params, status, last_error, created_at, done_at)
					VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, CASE WHEN $8 = 'pending' THEN NULL ELSE $10::timestamptz END)
					ON CONFLICT (dedupe_key) DO NOTHING RETURNING id`,
					key(send), d.member, platform, userOrNone(d.userID), locale, KindExpiryReminder,
					jsonParams(map[string]any{"points": d.points, "expires": d.expires.Unix()}), status, why, now).Scan(&id)
				if errors.Is(err, pgx.ErrNoRows) {
					continue // told already
				}
				if err != nil {
					return fmt.Errorf("record reminder: %w", err)
				}
				switch {
				case status == "pending":
					queued = append(queued, id)
				case !d.notify:
					run.Silenced++
				case d.userID == "":
					run.NeverTalked++
				default:
					run.Blocked++
				}
				// Earlier offsets that were never sent are not sent late.
				for _, o := range dueOffsets[:len(dueOffsets)-1] {
					tag, err := tx.Exec(ctx, `INSERT INTO outbound (dedupe_key, member_id, platform, user_id, locale, kind, status, last_error, created_at, done_at)
						VALUES ($1, $2, $3, $4, $5, $6, 'skipped', 'a later reminder was due', $7, $7) ON CONFLICT (dedupe_key) DO NOTHING`,
						key(o), d.member, platform, userOrNone(d.userID), locale, KindExpiryReminder, now)
					if err != nil {
						return fmt.Errorf("record reminder: %w", err)
					}
					run.Superseded += int(tag.RowsAffected())
				}
			}
			return nil
		})
		if err != nil {
			return run, err
		}
		run.Queued += len(queued)
		for _, id := range queued {
			s.hand(ctx, "send", id, s.notify.Send)
		}
		if len(batch) < reminderBatch {
			return run, nil
		}
	}
}

// userOrNone fills the outbound row's recipient for members nobody can reach
// (the row records the skip; the table needs a user or a chat).
func userOrNone(id string) string {
	if id == "" {
		return "0"
	}
	return id
}
