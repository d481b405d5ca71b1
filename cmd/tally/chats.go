package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tally-loyalty/tally/api"
	"github.com/tally-loyalty/tally/bot"
	"github.com/tally-loyalty/tally/bot/discord"
	"github.com/tally-loyalty/tally/bot/telegram"
	"github.com/tally-loyalty/tally/ledger"
)

// chats holds the started chat adapters: what runs until shutdown and what
// closes them.
type chats struct {
	runs    []func(ctx context.Context)
	closers []func()
	// senders deliver what Tally says on its own, per platform.
	senders map[string]bot.Sender
}

func (c chats) close() {
	for _, f := range c.closers {
		f()
	}
}

// startChats starts the platforms whose credentials are set and logs which
// run. It returns the HTTP handlers they need mounted.
func startChats(ctx context.Context, cfg config, router *bot.Router, l *ledger.Service, pool *pgxpool.Pool, log *slog.Logger) (chats, []api.Option, error) {
	c := chats{senders: map[string]bot.Sender{}}
	var opts []api.Option
	if cfg.TelegramToken == "" {
		log.Info("telegram not started: TELEGRAM_BOT_TOKEN is unset", "platform", "telegram")
	} else {
		tg, err := telegram.New(ctx, telegram.Config{
			Token: cfg.TelegramToken, APIURL: cfg.TelegramAPIURL, WebhookSecret: cfg.TelegramWebhookSecret,
			Router: router, DB: pool, Log: log,
			Unreachable: func(ctx context.Context, platform, userID string) {
				if err := l.MarkUnreachable(ctx, platform, userID, true); err != nil {
					log.Error("mark unreachable", "err", err)
				}
			},
		})
		if err != nil {
			return c, nil, err
		}
		if err := tg.RegisterCommands(ctx); err != nil {
			log.Warn("telegram: command menu not set", "err", err)
		}
		mode := "long polling"
		if cfg.TelegramWebhookSecret != "" {
			mode = "webhook at POST /telegram/webhook"
			opts = append(opts, api.WithHandler("POST /telegram/webhook", tg.WebhookHandler(), false))
		}
		c.runs = append(c.runs, tg.Run)
		c.senders["telegram"] = tg
		log.Info("telegram started", "platform", "telegram", "bot", "@"+tg.Username(), "mode", mode)
	}
	if cfg.DiscordToken == "" && cfg.DiscordPublicKey == "" {
		log.Info("discord not started: DISCORD_BOT_TOKEN and DISCORD_PUBLIC_KEY are unset", "platform", "discord")
		return c, opts, nil
	}
	dc, err := discord.New(discord.Config{Token: cfg.DiscordToken, AppID: cfg.DiscordAppID, PublicKey: cfg.DiscordPublicKey,
		APIURL: cfg.DiscordAPIURL, GatewayURL: cfg.DiscordGatewayURL, Router: router, Log: log, DB: pool})
	if err != nil {
		return c, nil, err
	}
	if cfg.DiscordPublicKey != "" {
		opts = append(opts, api.WithHandler("POST /discord/interactions", dc.InteractionsHandler(), false))
		log.Info("discord HTTP interactions at POST /discord/interactions", "platform", "discord")
	}
	if cfg.DiscordToken != "" {
		if err := dc.Open(ctx); err != nil {
			return c, nil, fmt.Errorf("%w (check DISCORD_BOT_TOKEN, DISCORD_APP_ID)", err)
		}
		c.closers = append(c.closers, func() { dc.Close() })
		c.senders["discord"] = dc
		log.Info("discord gateway connected", "platform", "discord")
	}
	return c, opts, nil
}
