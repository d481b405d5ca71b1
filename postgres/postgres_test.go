package postgres_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/tally-loyalty/tally/postgres"
	"github.com/tally-loyalty/tally/tallytest"
)

// TestOpenAndMigrate_TwoInstancesStartingTogether: both create the missing
// database and migrate at once; both come up and the schema is applied once.
func TestOpenAndMigrate_TwoInstancesStartingTogether(t *testing.T) {
	t.Parallel()
	// pool_max_conns must reach the pool, not the server.
	url := tallytest.EmptyDatabaseURL(t) + "&pool_max_conns=3"
	ctx := context.Background()
	const n = 4
	applied := make([][]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pool, err := postgres.Open(ctx, url)
			if err != nil {
				errs[i] = err
				return
			}
			defer pool.Close()
			applied[i], errs[i] = postgres.Migrate(ctx, pool)
		}()
	}
	wg.Wait()
	total := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("instance %d: %v", i, errs[i])
		}
		total += len(applied[i])
	}
	ms, _ := postgres.Migrations()
	if total != len(ms) {
		t.Fatalf("migrations applied %d times in all, want %d (once each)", total, len(ms))
	}
	pool, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var versions int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM schema_migrations").Scan(&versions); err != nil || versions != len(ms) {
		t.Fatalf("schema_migrations has %d rows (%v), want %d", versions, err, len(ms))
	}
}

func TestMigrate_RefusesAnEditedMigration(t *testing.T) {
	t.Parallel()
	pool := tallytest.DB(t) // migrated from the template
	ctx := context.Background()
	if applied, err := postgres.Migrate(ctx, pool); err != nil || len(applied) != 0 {
		t.Fatalf("second migrate: %v %v, want nothing to do", applied, err)
	}
	if _, err := pool.Exec(ctx, "UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1"); err != nil {
		t.Fatal(err)
	}
	_, err := postgres.Migrate(ctx, pool)
	if err == nil || !strings.Contains(err.Error(), "changed after it was applied") {
		t.Fatalf("migrate over an edited migration: %v", err)
	}
}

func TestOpen_UnreachableServerSaysWhichAndHow(t *testing.T) {
	t.Parallel()
	_, err := postgres.Open(context.Background(), "postgres://tally:secret@127.0.0.1:1/tally?sslmode=disable&connect_timeout=2")
	if err == nil {
		t.Fatal("no error for a closed port")
	}
	msg := err.Error()
	if !strings.Contains(msg, "127.0.0.1:1") || !strings.Contains(msg, "pg_ctlcluster") || strings.Contains(msg, "secret") {
		t.Fatalf("error %q should name the server, say how to start it and hide the password", msg)
	}
	if _, err := postgres.Open(context.Background(), "::not a url"); err == nil || !strings.Contains(err.Error(), "DATABASE_URL") {
		t.Fatalf("bad URL: %v", err)
	}
}
