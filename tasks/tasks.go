// Package tasks runs community tasks and their moderation: members claim
// tasks of the programme file once per day, week or month, moderators approve
// or reject the claims that need review, approved claims are paid through the
// ledger by a queue job, and every moderator and admin action is written to an
// audit log. Each step records its intent in Postgres before the queue carries
// it out, so a lost job is only late (DESIGN.md).
package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tally-loyalty/tally"
	"github.com/tally-loyalty/tally/ledger"
	"github.com/tally-loyalty/tally/program"
)

// Notifier hands work to the queue once its intent is committed. An error is
// logged and left to the reconciler.
type Notifier interface {
	PayClaim(ctx context.Context, claimID int64) error
	Send(ctx context.Context, outboundID int64) error
}

// Service is tasks and moderation on Postgres.
type Service struct {
	pool   *pgxpool.Pool
	ledger *ledger.Service
	prog   *program.Program
	clock  tally.Clock
	log    *slog.Logger
	notify Notifier
	ranks  Ranker
	// window is how many reminders may wait to be sent at once
	// (ReminderWindow; tests make it small).
	window int

	// afterPay runs between the ledger payment of a claim and its recording
	// (tests simulate a crash there).
	afterPay func(claimID int64) error
	// afterPrize runs after each prize is paid (tests crash there).
	afterPrize func(rank int64) error
}

// New returns the service. Until SetNotifier is called, nothing is enqueued
// and the reconciler picks everything up.
func New(pool *pgxpool.Pool, l *ledger.Service, prog *program.Program, clock tally.Clock, log *slog.Logger) *Service {
	return &Service{pool: pool, ledger: l, prog: prog, clock: clock, log: log, notify: nopNotifier{}, ranks: pgRanker{pool},
		window: ReminderWindow}
}

// SetRanker sets where live leaderboards are read (Postgres by default).
func (s *Service) SetRanker(r Ranker) { s.ranks = r }

// SetNotifier sets where committed work is handed on (the queue).
func (s *Service) SetNotifier(n Notifier) { s.notify = n }

// Ledger returns the ledger the service pays through.
func (s *Service) Ledger() *ledger.Service { return s.ledger }

// Program returns the programme the service runs.
func (s *Service) Program() *program.Program { return s.prog }

type nopNotifier struct{}

func (nopNotifier) PayClaim(context.Context, int64) error { return nil }
func (nopNotifier) Send(context.Context, int64) error     { return nil }

// Now is the service's clock.
func (s *Service) Now() time.Time { return s.clock.Now() }

func (s *Service) now() time.Time { return s.clock.Now().UTC().Truncate(time.Microsecond) }

// Period names the period of a task's recurrence that t falls in, in the
// programme's timezone, and when the next one starts (zero for "once").
func Period(recurrence string, t time.Time, loc *time.Location) (name string, next time.Time) {
	l := t.In(loc)
	y, m, d := l.Date()
	switch recurrence {
	case program.Daily:
		return l.Format("2006-01-02"), time.Date(y, m, d+1, 0, 0, 0, 0, loc)
	case program.Weekly:
		iy, iw := l.ISOWeek()
		back := (int(l.Weekday()) + 6) % 7 // days since Monday
		return fmt.Sprintf("%04d-W%02d", iy, iw), time.Date(y, m, d-back+7, 0, 0, 0, 0, loc)
	case program.Monthly:
		return l.Format("2006-01"), time.Date(y, m+1, 1, 0, 0, 0, 0, loc)
	}
	return "once", time.Time{}
}

// day is the programme's calendar day at t, for daily limits.
func (s *Service) day(t time.Time) time.Time {
	y, m, d := t.In(s.prog.Location).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// Advisory locks are taken on a hash of these prefixes and an id.
const (
	lockTask      = "tally:task:"      // one task's approved-claims count
	lockModerator = "tally:moderator:" // one moderator's daily award total
)

const stateUniqueViolation = "23505"

func uniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == stateUniqueViolation
}

// inTx runs fn in a transaction, retrying it on serialization failures and
// deadlocks.
func (s *Service) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := pgx.BeginFunc(ctx, s.pool, fn)
		var pgErr *pgconn.PgError
		if err != nil && attempt < 10 && errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01") {
			continue
		}
		return err
	}
}

// hand passes committed work to the queue; a failure is only logged, because
// the reconciler re-enqueues whatever is due.
func (s *Service) hand(ctx context.Context, what string, id int64, fn func(context.Context, int64) error) {
	if err := fn(ctx, id); err != nil {
		s.log.Warn("tasks: enqueue failed; the reconciler will retry", "job", what, "id", id, "err", err)
	}
}
