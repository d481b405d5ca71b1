package queue_test

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/tally-loyalty/tally/queue"
	"github.com/tally-loyalty/tally/tallytest"
)

// TestQueue_RunsJobsAndShutsDown starts the worker and scheduler on a Redis
// database of the test's own, runs a job through them and shuts down.
func TestQueue_RunsJobsAndShutsDown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	q, err := queue.New(ctx, tallytest.Redis(t), queue.Config{Concurrency: 2}, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	var ran atomic.Int32
	done := make(chan struct{})
	q.Handle("test:ping", asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
		if ran.Add(1) == 1 {
			close(done)
		}
		return nil
	}))
	if err := q.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Client().Enqueue(asynq.NewTask("test:ping", nil), asynq.TaskID("once")); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Client().Enqueue(asynq.NewTask("test:ping", nil), asynq.TaskID("once")); err == nil {
		t.Fatal("a second task with the same id was accepted")
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("job did not run in 10 s")
	}
	start := time.Now()
	q.Shutdown()
	if d := time.Since(start); d > 8*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
	if ran.Load() != 1 {
		t.Fatalf("job ran %d times", ran.Load())
	}
}

func TestQueue_UnreachableRedisSaysWhichAndHow(t *testing.T) {
	t.Parallel()
	_, err := queue.New(context.Background(), "redis://:hunter2@127.0.0.1:1/0", queue.Config{}, slog.Default())
	if err == nil {
		t.Fatal("no error for a closed port")
	}
	msg := err.Error()
	if !strings.Contains(msg, "127.0.0.1:1") || !strings.Contains(msg, "redis-server") || strings.Contains(msg, "hunter2") {
		t.Fatalf("error %q should name the server, say how to start it and hide the password", msg)
	}
}
