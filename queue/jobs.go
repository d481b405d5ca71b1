package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/hibiken/asynq"

	"github.com/tally-loyalty/tally"
	"github.com/tally-loyalty/tally/bot"
	"github.com/tally-loyalty/tally/program"
	"github.com/tally-loyalty/tally/tasks"
)

// Job types.
const (
	// TypePayClaim pays an approved claim; payload: the claim id. Its task id
	// is derived from the claim, and the ledger key too, so duplicates and
	// retries pay once.
	TypePayClaim = "claim:pay"
	// TypeSend sends one outbound message; payload: its id.
	TypeSend = "outbound:send"
	// TypeReconcile re-enqueues work recorded in Postgres and not done
	// (Redis may have lost the jobs).
	TypeReconcile = "reconcile"
	// TypeCloseSeason closes a season whose end has passed; payload: its id,
	// task id "season:close:<id>".
	TypeCloseSeason = "season:close"
	// TypeExpire expires the lots whose expiry has passed (every
	// ExpireEvery; two runs at once share the work).
	TypeExpire = "expiry:sweep"
	// TypeDispatchReminders hands recorded expiry reminders on as messages,
	// a window at a time (every DispatchEvery while reminders are
	// configured).
	TypeDispatchReminders = "reminders:dispatch"
	// TypeSeasonsDue runs at each season boundary of the programme's cadence
	// (in its timezone) and enqueues the close of every season due.
	TypeSeasonsDue = "season:due"
)

// ExpireEvery is how often expired points are swept when the programme does
// not say (expiry.sweep_every).
const ExpireEvery = time.Hour

// DispatchEvery is how often recorded reminders are handed on: up to
// tasks.ReminderWindow each time, as the platforms take them.
const DispatchEvery = 5 * time.Second

// seasonCron is when each cadence's seasons turn over.
var seasonCron = map[string]string{
	program.CadenceWeekly:    "0 0 * * 1",
	program.CadenceMonthly:   "0 0 1 * *",
	program.CadenceQuarterly: "0 0 1 1,4,7,10 *",
}

// Reconciliation: work older than ReconcileAge and still not done is handed
// to the queue again every ReconcileEvery.
const (
	ReconcileAge   = time.Minute
	ReconcileEvery = "@every 1m"
	reconcileBatch = 500
)

// Renderer turns a message into what a platform sends, in its recipient's
// language.
type Renderer interface {
	Render(ctx context.Context, m tasks.Message) (bot.Outgoing, error)
}

// Jobs carries out the tasks service's work on the queue and is its Notifier.
type Jobs struct {
	q       *Queue
	tasks   *tasks.Service
	senders map[string]bot.Sender
	render  Renderer
	log     *slog.Logger
}

// RegisterJobs registers the job handlers and the reconciler's schedule on q,
// and sets itself as the tasks service's notifier. senders maps a platform
// ("telegram", "discord") to its running adapter; messages for a platform
// without one are skipped.
func RegisterJobs(q *Queue, svc *tasks.Service, senders map[string]bot.Sender, render Renderer) (*Jobs, error) {
	j := &Jobs{q: q, tasks: svc, senders: senders, render: render, log: q.log}
	q.Handle(TypePayClaim, asynq.HandlerFunc(j.payClaim))
	q.Handle(TypeSend, asynq.HandlerFunc(j.send))
	q.Handle(TypeReconcile, asynq.HandlerFunc(j.reconcile))
	q.Handle(TypeCloseSeason, asynq.HandlerFunc(j.closeSeason))
	q.Handle(TypeSeasonsDue, asynq.HandlerFunc(j.seasonsDue))
	q.Handle(TypeExpire, asynq.HandlerFunc(j.expire))
	q.Handle(TypeDispatchReminders, asynq.HandlerFunc(j.dispatchReminders))
	every := svc.Program().Expiry.SweepEvery
	if every <= 0 {
		every = ExpireEvery
	}
	if _, err := q.scheduler.Register("@every "+every.String(), asynq.NewTask(TypeExpire, nil),
		asynq.Unique(max(every-time.Second, time.Second)), asynq.Queue(q.name), asynq.MaxRetry(0), asynq.Timeout(30*time.Minute)); err != nil {
		return nil, fmt.Errorf("schedule expiry sweep: %w", err)
	}
	if len(svc.Program().Expiry.Reminders) > 0 {
		if _, err := q.scheduler.Register("@every "+DispatchEvery.String(), asynq.NewTask(TypeDispatchReminders, nil),
			asynq.Unique(DispatchEvery-time.Second), asynq.Queue(q.name), asynq.MaxRetry(0), asynq.Timeout(time.Minute)); err != nil {
			return nil, fmt.Errorf("schedule reminders: %w", err)
		}
	}
	// Unique, not a task id: a task id stays taken while a failed run sits in
	// the archive, which would stop the reconciler for good.
	if _, err := q.scheduler.Register(ReconcileEvery, asynq.NewTask(TypeReconcile, nil),
		asynq.Unique(50*time.Second), asynq.Queue(q.name), asynq.MaxRetry(0), asynq.Timeout(time.Minute)); err != nil {
		return nil, fmt.Errorf("schedule reconciler: %w", err)
	}
	if cfg := svc.Program().Seasons; cfg != nil && seasonCron[cfg.Cadence] != "" {
		if _, err := q.scheduler.Register(seasonCron[cfg.Cadence], asynq.NewTask(TypeSeasonsDue, nil),
			asynq.Queue(q.name), asynq.MaxRetry(5)); err != nil {
			return nil, fmt.Errorf("schedule season rollover: %w", err)
		}
	}
	svc.SetNotifier(j)
	return j, nil
}

func idPayload(id int64) []byte { return []byte(strconv.FormatInt(id, 10)) }

func payloadID(t *asynq.Task) (int64, error) {
	id, err := strconv.ParseInt(string(t.Payload()), 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("%s: bad payload %q: %w", t.Type(), t.Payload(), asynq.SkipRetry)
	}
	return id, nil
}

// enqueue adds a job under a task id; one already queued under it counts as
// done, since it carries out the same work.
func (j *Jobs) enqueue(ctx context.Context, typ, taskID string, id int64, opts ...asynq.Option) error {
	opts = append(opts, asynq.TaskID(taskID), asynq.Queue(j.q.name))
	_, err := j.q.client.EnqueueContext(ctx, asynq.NewTask(typ, idPayload(id)), opts...)
	if !errors.Is(err, asynq.ErrTaskIDConflict) {
		return err
	}
	// An archived task (out of retries) keeps its id for months: the work is
	// still due in Postgres, so run it again.
	info, ierr := j.q.inspector.GetTaskInfo(j.q.name, taskID)
	if ierr != nil || info.State != asynq.TaskStateArchived {
		return nil // queued, running or waiting to retry: it will happen
	}
	if err := j.q.inspector.RunTask(j.q.name, taskID); err != nil {
		return fmt.Errorf("rerun archived job %s: %w", taskID, err)
	}
	j.log.Info("queue: archived job run again", "task", taskID)
	return nil
}

// PayClaim enqueues the payment of an approved claim.
func (j *Jobs) PayClaim(ctx context.Context, claimID int64) error {
	return j.enqueue(ctx, TypePayClaim, "claim:pay:"+strconv.FormatInt(claimID, 10), claimID, asynq.MaxRetry(25))
}

// Send enqueues an outbound message.
func (j *Jobs) Send(ctx context.Context, id int64) error {
	return j.enqueue(ctx, TypeSend, "outbound:"+strconv.FormatInt(id, 10), id, asynq.MaxRetry(3*tasks.MaxAttempts))
}

func (j *Jobs) payClaim(ctx context.Context, t *asynq.Task) error {
	id, err := payloadID(t)
	if err != nil {
		return err
	}
	err = j.tasks.PayClaim(ctx, id)
	if code := tally.ErrorCode(err); err != nil && code != tally.EINTERNAL {
		// not_found, invalid: a retry cannot help.
		j.log.Error("queue: claim cannot be paid", "claim", id, "err", err)
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	return err
}

func (j *Jobs) send(ctx context.Context, t *asynq.Task) error {
	id, err := payloadID(t)
	if err != nil {
		return err
	}
	m, err := j.tasks.Message(ctx, id)
	if tally.ErrorCode(err) == tally.ENOTFOUND {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	if err != nil {
		return err
	}
	if m.Status != "pending" {
		return nil
	}
	if m.Member != 0 && m.Unreachable {
		return j.tasks.Finish(ctx, id, tasks.Skipped, "the member blocked the bot")
	}
	sender := j.senders[m.Platform]
	if sender == nil {
		return j.tasks.Finish(ctx, id, tasks.Skipped, m.Platform+" is not running")
	}
	out, err := j.render.Render(ctx, m)
	if tally.ErrorCode(err) == tally.ENOTFOUND {
		return j.tasks.Finish(ctx, id, tasks.Skipped, err.Error())
	}
	if err != nil {
		return err
	}
	ref := ""
	poster, canEdit := sender.(bot.Poster)
	switch {
	case m.Kind == tasks.KindReviewUpdate:
		post, rerr := j.tasks.SentRef(ctx, m.Param("post"))
		if rerr != nil {
			return rerr
		}
		if post == "" || !canEdit {
			// The post is not out yet (it will show the decision when it is) or cannot be edited.
			return j.tasks.Finish(ctx, id, tasks.Skipped, "no sent post to edit")
		}
		err = poster.Edit(ctx, post, out)
	case canEdit:
		ref, err = poster.Post(ctx, out)
	default:
		err = sender.Send(ctx, out)
	}
	var limited *bot.RateLimitedError
	switch {
	case err == nil:
		return j.tasks.Sent(ctx, id, ref)
	case errors.Is(err, bot.ErrUnreachable):
		if m.Member != 0 {
			if merr := j.tasks.MarkUnreachable(ctx, m.Member); merr != nil {
				return merr
			}
		}
		if m.ChatID != "" {
			// A review or announcement chat the bot cannot post in needs an operator.
			j.log.Error("queue: cannot post in the chat; check the programme file and the bot's rights there",
				"message", id, "platform", m.Platform, "chat", m.ChatID, "err", err)
		} else {
			j.log.Info("queue: recipient unreachable, message skipped", "message", id, "platform", m.Platform, "err", err)
		}
		return j.tasks.Finish(ctx, id, tasks.Skipped, err.Error())
	case errors.As(err, &limited):
		return err // not a failure of the message: retried after the platform's delay
	}
	more, aerr := j.tasks.Attempted(ctx, id, err.Error())
	if aerr != nil {
		return aerr
	}
	if !more {
		j.log.Error("queue: message given up", "message", id, "attempts", tasks.MaxAttempts, "err", err)
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	return err
}

func (j *Jobs) reconcile(ctx context.Context, _ *asynq.Task) error {
	// The next run comes in a minute; a failure is logged, not retried.
	if err := j.Reconcile(ctx, ReconcileAge); err != nil {
		j.log.Error("queue: reconciling failed; next try in a minute", "err", err)
	}
	return nil
}

// Reconcile hands overdue work (older than age) to the queue again and
// finishes moderator actions a crash interrupted.
func (j *Jobs) Reconcile(ctx context.Context, age time.Duration) error {
	due, err := j.tasks.Overdue(ctx, age, reconcileBatch)
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range due.Claims {
		errs = append(errs, j.PayClaim(ctx, id))
	}
	for _, id := range due.Messages {
		errs = append(errs, j.Send(ctx, id))
	}
	for _, id := range due.Actions {
		errs = append(errs, j.tasks.FinishAction(ctx, id))
	}
	errs = append(errs, j.enqueueDueSeasons(ctx))
	if n := len(due.Claims) + len(due.Messages) + len(due.Actions); n > 0 {
		j.log.Info("queue: reconciled overdue work", "claims", len(due.Claims), "messages", len(due.Messages), "actions", len(due.Actions))
	}
	return errors.Join(errs...)
}

// retryDelay waits as long as a platform asked after a rate limit, else backs
// off exponentially from a second to ten minutes, with jitter so that retries
// of many jobs that failed together spread out.
func retryDelay(n int, err error, _ *asynq.Task) time.Duration {
	var limited *bot.RateLimitedError
	if errors.As(err, &limited) && limited.After > 0 {
		// asynq keeps retry times in whole seconds, rounded down: a second
		// more never retries before the platform allows.
		return limited.After + time.Second
	}
	d := maxBackoff
	if n < 10 {
		d = min(time.Second<<n, maxBackoff)
	}
	return d + rand.N(d/4+1)
}

const maxBackoff = 10 * time.Minute

// CloseSeason enqueues the close of a season that has ended.
func (j *Jobs) CloseSeason(ctx context.Context, id int64) error {
	return j.enqueue(ctx, TypeCloseSeason, "season:close:"+strconv.FormatInt(id, 10), id, asynq.MaxRetry(25), asynq.Timeout(5*time.Minute))
}

// enqueueDueSeasons opens a season if the programme has seasons and none is
// open, and enqueues the close of every season whose end has passed.
func (j *Jobs) enqueueDueSeasons(ctx context.Context) error {
	if j.tasks.Program().Seasons == nil {
		return nil
	}
	if _, err := j.tasks.EnsureSeason(ctx); err != nil {
		return err
	}
	// Scores of accounts /link joined whose merge a crash interrupted.
	if err := j.tasks.MergeAllScores(ctx); err != nil {
		return err
	}
	due, err := j.tasks.DueSeasons(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range due {
		errs = append(errs, j.CloseSeason(ctx, id))
	}
	return errors.Join(errs...)
}

func (j *Jobs) seasonsDue(ctx context.Context, _ *asynq.Task) error { return j.enqueueDueSeasons(ctx) }

func (j *Jobs) closeSeason(ctx context.Context, t *asynq.Task) error {
	id, err := payloadID(t)
	if err != nil {
		return err
	}
	res, err := j.tasks.Close(ctx, id, false)
	if code := tally.ErrorCode(err); err != nil && code != tally.EINTERNAL {
		j.log.Error("queue: season cannot be closed", "season", id, "err", err)
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	if err == nil && !res.Replayed {
		j.log.Info("season closed", "season", res.Season.Number, "standings", len(res.Standings), "next", res.Next.Number)
	}
	return err
}

func (j *Jobs) expire(ctx context.Context, _ *asynq.Task) error {
	if err := j.Expire(ctx); err != nil {
		j.log.Error("queue: expiry job failed; next try at the next run", "err", err)
	}
	return nil
}

// Expire runs the expiry sweep until no due lot is left, records the
// reminders whose time has come and hands the first window of them on,
// logging what it did.
func (j *Jobs) Expire(ctx context.Context) error {
	start := time.Now()
	sw, err := j.tasks.Ledger().ExpireAll(ctx)
	if err != nil {
		return err
	}
	if sw.Expired > 0 {
		j.log.Info("expired points", "lots", sw.Expired, "points", sw.Points, "members", sw.Members,
			"took", time.Since(start).Round(time.Millisecond))
	}
	// What a failed run recorded before it failed is logged too.
	run, err := j.tasks.RecordReminders(ctx)
	if run != (tasks.ReminderRun{}) {
		j.log.Info("expiry reminders recorded", "to_send", run.Recorded, "superseded", run.Superseded, "silenced", run.Silenced,
			"never_talked", run.NeverTalked, "blocked", run.Blocked)
	}
	if err != nil {
		return err
	}
	return j.DispatchReminders(ctx)
}

func (j *Jobs) dispatchReminders(ctx context.Context, _ *asynq.Task) error {
	if err := j.DispatchReminders(ctx); err != nil {
		j.log.Error("queue: reminders not handed on; next try at the next run", "err", err)
	}
	return nil
}

// DispatchReminders hands recorded reminders on as messages, up to
// tasks.ReminderWindow waiting at once, logging what it did.
func (j *Jobs) DispatchReminders(ctx context.Context) error {
	run, err := j.tasks.DispatchReminders(ctx)
	if run != (tasks.DispatchRun{Busy: run.Busy}) {
		j.log.Info("expiry reminders handed on", "messages", run.Handed, "superseded", run.Superseded, "late", run.Late,
			"nothing_left", run.NothingLeft, "silenced", run.Silenced, "blocked", run.Blocked, "never_talked", run.NeverTalked)
	}
	return err
}
