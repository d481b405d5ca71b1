// Package queue runs Tally's background work on asynq (Redis): the worker
// that executes jobs and the scheduler that enqueues periodic ones. Job types
// register their handlers and schedules here; every job is idempotent and
// recoverable from Postgres, because Redis may lose everything (DESIGN.md).
package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/tally-loyalty/tally/bot"
)

// pollInterval is how often an idle worker looks for new jobs.
const pollInterval = 40 * time.Millisecond

// Queue owns the asynq client, worker server and scheduler of one process.
type Queue struct {
	opt       asynq.RedisConnOpt
	url       string
	client    *asynq.Client
	inspector *asynq.Inspector
	rdb       redis.UniversalClient
	server    *asynq.Server
	scheduler *asynq.Scheduler
	mux       *asynq.ServeMux
	log       *slog.Logger
	name      string
}

// Config sets how the worker runs.
type Config struct {
	// Concurrency is how many jobs run at once (default 10).
	Concurrency int
	// Location is the zone periodic schedules are read in (default UTC).
	Location *time.Location
	// ShutdownTimeout bounds how long running jobs get to finish at shutdown
	// (default 5 s, inside serve's 10 s budget).
	ShutdownTimeout time.Duration
	// Name is the asynq queue jobs go to and are taken from (default
	// "default"); `tally bench` uses its own so a serve on the same Redis
	// never runs its jobs.
	Name string
}

// New prepares a queue on the Redis at redisURL and checks that it answers.
func New(ctx context.Context, redisURL string, cfg Config, log *slog.Logger) (*Queue, error) {
	opt, err := asynq.ParseRedisURI(redisURL)
	if err != nil {
		return nil, fmt.Errorf("parse REDIS_URL: %w", err)
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 10
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 5 * time.Second
	}
	if cfg.Name == "" {
		cfg.Name = "default"
	}
	rdb, ok := opt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return nil, fmt.Errorf("REDIS_URL: unsupported connection type")
	}
	q := &Queue{opt: opt, url: redisURL, rdb: rdb, client: asynq.NewClient(opt), inspector: asynq.NewInspector(opt),
		mux: asynq.NewServeMux(), log: log, name: cfg.Name}
	if err := q.Ping(ctx); err != nil {
		q.Close()
		return nil, Unreachable(redisURL, err)
	}
	logger := &asynqLogger{log.With("component", "asynq")}
	q.server = asynq.NewServer(opt, asynq.Config{
		Concurrency: cfg.Concurrency,
		Queues:      map[string]int{cfg.Name: 1},
		// asynq polls Redis and, finding nothing, sleeps half to one and a half
		// times this: its default of 1 s made an idle worker take ~1 s to see
		// a new job. 40 ms is 25 cheap polls a second per worker process.
		TaskCheckInterval: pollInterval,
		ShutdownTimeout:   cfg.ShutdownTimeout,
		Logger:            logger,
		LogLevel:          asynq.WarnLevel,
		RetryDelayFunc:    retryDelay,
		// Retries after a second or a platform's retry_after run on time.
		DelayedTaskCheckInterval: time.Second,
		// Waiting out a platform's rate limit is not a failed attempt.
		IsFailure: func(err error) bool {
			var limited *bot.RateLimitedError
			return !errors.As(err, &limited)
		},
	})
	q.scheduler = asynq.NewScheduler(opt, &asynq.SchedulerOpts{Location: cfg.Location, Logger: logger, LogLevel: asynq.WarnLevel})
	return q, nil
}

// Unreachable says which Redis failed and how to start one.
func Unreachable(redisURL string, err error) error {
	shown := "(unparsable URL)"
	if u, perr := url.Parse(redisURL); perr == nil {
		shown = u.Redacted()
	}
	return fmt.Errorf("cannot reach Redis at %s: %w\n"+
		"  start it with: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save \"\" --appendonly no\n"+
		"  or, with Docker: docker compose up -d redis", shown, err)
}

// Ping checks that Redis answers.
func (q *Queue) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return q.rdb.Ping(ctx).Err()
}

// Handle registers the handler of a job type. Call before Start.
func (q *Queue) Handle(taskType string, h asynq.Handler) { q.mux.Handle(taskType, h) }

// Use wraps every job handler in mw (logging, metrics, tests). Call before Start.
func (q *Queue) Use(mw asynq.MiddlewareFunc) { q.mux.Use(mw) }

// Redis returns the queue's Redis client (other Redis users share it).
func (q *Queue) Redis() redis.UniversalClient { return q.rdb }

// RedisConnOpt returns the Redis the queue runs on (for the queue web UI).
func (q *Queue) RedisConnOpt() asynq.RedisConnOpt { return q.opt }

// Client returns the client jobs are enqueued with.
func (q *Queue) Client() *asynq.Client { return q.client }

// Start runs the worker and the scheduler in the background.
func (q *Queue) Start() error {
	if err := q.server.Start(q.mux); err != nil {
		return fmt.Errorf("start queue worker: %w", err)
	}
	if err := q.scheduler.Start(); err != nil {
		q.server.Shutdown()
		return fmt.Errorf("start queue scheduler: %w", err)
	}
	return nil
}

// Shutdown stops the scheduler, lets running jobs finish within the shutdown
// timeout (unfinished ones go back to the queue), and closes connections.
func (q *Queue) Shutdown() {
	q.scheduler.Shutdown()
	q.server.Shutdown()
	q.Close()
}

// Close releases the client connections.
func (q *Queue) Close() {
	q.client.Close()
	q.inspector.Close()
	q.rdb.Close()
}

// asynqLogger sends asynq's logs to slog.
type asynqLogger struct{ l *slog.Logger }

func (a *asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...)) }
func (a *asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...)) }
func (a *asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...)) }
func (a *asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...)) }
func (a *asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...)); os.Exit(1) }
