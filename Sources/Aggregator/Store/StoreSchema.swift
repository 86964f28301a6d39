import GRDB

/// The fleet database schema, as an ordered list of named migrations (`v1`, `v2`, …).
///
/// Migrations are append-only: a released migration is never edited, a change is a new migration. The
/// names applied to a file are recorded in `grdb_migrations`, which is how `FleetStore` refuses a file
/// migrated by a newer binary instead of writing rows that version does not expect.
///
/// Conventions, so queries can compare and index without conversions:
/// - times are `REAL` unix seconds (UTC), `Date.timeIntervalSince1970`; `probe_minute.minute` is the
///   minute's start in unix seconds;
/// - sequence numbers and generations (`UInt64` on the wire) are stored by bit pattern in `INTEGER`,
///   so any value round-trips;
/// - structured values (labels, mirrors, evidence) are JSON text with sorted keys;
/// - error classes are their contract strings (`ok`, `tcp_timeout`, …).
enum StoreSchema {
    /// `PRAGMA application_id` of a regwatch database ("RgWt"), so a file of another application is
    /// recognised before anything is written into it.
    static let applicationID: Int32 = 0x5267_5774

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1", migrate: v1)
        m.registerMigration("v2-outage-registry", migrate: v2)
        m.registerMigration("v3-failover-state", migrate: v3)
        m.registerMigration("v4-class-since", migrate: v4)
        m.registerMigration("v5-one-row-per-report", migrate: v5)
        m.registerMigration("v6-spool-headroom", migrate: v6)
        m.registerMigration("v7-leader-term", migrate: v7)
        return m
    }

    /// Outages are scoped per registry too (one mirror URL can serve several registries), and an open
    /// outage's engine state is kept so a restarted aggregator neither reopens nor forgets it.
    private static func v2(_ db: Database) throws {
        try db.execute(sql: """
            ALTER TABLE outage ADD COLUMN registry TEXT;
            ALTER TABLE outage ADD COLUMN engineState TEXT;
            CREATE INDEX outage_started ON outage(startedAt);
            """)
    }

    /// The failover controller's whole state as one JSON document (it is restored as a unit, so
    /// generations never go backwards after a restart), and the latest ack of every host.
    /// `failover_plan` / `failover_ack` (v1) keep the timeline: every generation and every host's answer.
    private static func v3(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE failover_state (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                state TEXT NOT NULL,
                updatedAt REAL NOT NULL
            );
            CREATE TABLE failover_last_ack (
                hostId TEXT PRIMARY KEY NOT NULL,
                generation INTEGER NOT NULL,
                outcome TEXT NOT NULL,
                detail TEXT NOT NULL DEFAULT '',
                at REAL NOT NULL
            );
            ALTER TABLE failover_plan ADD COLUMN kind TEXT NOT NULL DEFAULT 'failover';
            """)
    }

    /// When each latest state's class was first reported (aggregator clock): correlation dates an
    /// outage from the report that completed its quorum, not from whichever report came last.
    private static func v4(_ db: Database) throws {
        try db.execute(sql: "ALTER TABLE endpoint_state ADD COLUMN classSince REAL")
    }

    /// The leadership term (one row): its epoch goes into every failover command, so an agent can refuse
    /// a deposed leader's. One aggregator on SQLite starts a term at each start.
    private static func v7(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE leader_term (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                epoch INTEGER NOT NULL,
                holder TEXT NOT NULL,
                since REAL NOT NULL
            );
            """)
    }

    /// The agents' spool counts (what `regwatch_agent_events_dropped_total` counts from) and the lowest
    /// pull quota per egress group once a minute, for the dashboard's 24 h headroom chart (the latest
    /// states keep only the present).
    private static func v6(_ db: Database) throws {
        try db.execute(sql: """
            ALTER TABLE host ADD COLUMN spoolPending INTEGER;
            ALTER TABLE host ADD COLUMN spoolDropped INTEGER;
            CREATE TABLE headroom_minute (
                egress TEXT NOT NULL,
                minute REAL NOT NULL,
                remaining INTEGER NOT NULL,
                PRIMARY KEY (egress, minute)
            ) WITHOUT ROWID;
            CREATE INDEX headroom_minute_minute ON headroom_minute(minute);
            """)
    }

    /// One row per report instead of one per probe (see ``ProbeStateText``): a host's latest probe
    /// states move into `host.probes` and each report's samples into one `probe_report` row. The old
    /// tables' rows are carried over, and views with the old names and columns read the new ones, so
    /// every query and an operator's `sqlite3` session see the same `endpoint_state` and `probe_sample`.
    /// The element positions are ``ProbeStateText``'s (StoreTests checks both agree).
    private static func v5(_ db: Database) throws {
        try db.execute(sql: """
            ALTER TABLE host ADD COLUMN probes TEXT NOT NULL DEFAULT '[]';
            ALTER TABLE host ADD COLUMN probesObservedAt REAL; -- aggregator clock: when host.probes was written
            ALTER TABLE host DROP COLUMN endpointCount; -- json_array_length(probes) now
            UPDATE host SET
                probes = coalesce((
                    SELECT json_group_array(json_array(registry, endpoint, role, class, classSince, detail, dnsMs, connectMs, tlsMs, ttfbMs, totalMs, tlsTrusted, tlsDaysLeft, tlsExpiresAt, rateLimitLimit, rateLimitRemaining, rateLimitWindowSeconds, rateLimitSource, manifestReference, manifestStatus, manifestDigest, checkedAt))
                    FROM (SELECT * FROM endpoint_state e WHERE e.hostId = host.id ORDER BY e.registry, e.endpoint)), '[]'),
                probesObservedAt = (SELECT max(observedAt) FROM endpoint_state e WHERE e.hostId = host.id);
            DROP TABLE endpoint_state;
            CREATE VIEW endpoint_state AS
                SELECT h.id AS hostId,
                       p.value ->> 0 AS registry,
                       p.value ->> 1 AS endpoint,
                       p.value ->> 2 AS role,
                       p.value ->> 3 AS class,
                       p.value ->> 4 AS classSince,
                       p.value ->> 5 AS detail,
                       p.value ->> 6 AS dnsMs,
                       p.value ->> 7 AS connectMs,
                       p.value ->> 8 AS tlsMs,
                       p.value ->> 9 AS ttfbMs,
                       p.value ->> 10 AS totalMs,
                       p.value ->> 11 AS tlsTrusted,
                       p.value ->> 12 AS tlsDaysLeft,
                       p.value ->> 13 AS tlsExpiresAt,
                       p.value ->> 14 AS rateLimitLimit,
                       p.value ->> 15 AS rateLimitRemaining,
                       p.value ->> 16 AS rateLimitWindowSeconds,
                       p.value ->> 17 AS rateLimitSource,
                       p.value ->> 18 AS manifestReference,
                       p.value ->> 19 AS manifestStatus,
                       p.value ->> 20 AS manifestDigest,
                       p.value ->> 21 AS checkedAt,
                       h.probesObservedAt AS observedAt,
                       h.lastCycleStartedAt AS cycleStartedAt
                FROM host h, json_each(h.probes) p;

            CREATE TABLE probe_report (
                id INTEGER PRIMARY KEY,
                hostId TEXT NOT NULL,
                observedAt REAL NOT NULL,     -- aggregator clock, so roll-up minutes are never late
                probes TEXT NOT NULL          -- [[registry, endpoint, class, totalMs, bucket], ...]
            );
            CREATE INDEX probe_report_observedAt ON probe_report(observedAt);
            INSERT INTO probe_report (hostId, observedAt, probes)
                SELECT hostId, observedAt, json_group_array(json_array(registry, endpoint, class, totalMs, bucket))
                FROM (SELECT * FROM probe_sample ORDER BY id)
                GROUP BY hostId, observedAt
                ORDER BY min(id);
            DROP TABLE probe_sample;
            CREATE VIEW probe_sample AS
                SELECT r.id AS reportId, r.hostId,
                       s.value ->> 0 AS registry, s.value ->> 1 AS endpoint, s.value ->> 2 AS class,
                       s.value ->> 3 AS totalMs, s.value ->> 4 AS bucket, r.observedAt
                FROM probe_report r, json_each(r.probes) s;
            """)
    }

    private static func v1(_ db: Database) throws {
        try db.execute(sql: """
            PRAGMA application_id = \(applicationID);

            -- Small key/value table for the store's own bookkeeping (roll-up watermark).
            CREATE TABLE store_meta (
                key TEXT PRIMARY KEY NOT NULL,
                value
            );

            -- One row per host ever seen; latest report wins.
            CREATE TABLE host (
                id TEXT PRIMARY KEY NOT NULL,
                labels TEXT NOT NULL DEFAULT '{}',
                zone TEXT,
                egress TEXT,
                agentVersion TEXT NOT NULL DEFAULT '',
                intervalSeconds REAL NOT NULL DEFAULT 30,
                appliedGeneration INTEGER NOT NULL DEFAULT 0,
                mirrorPools TEXT NOT NULL DEFAULT '{}',
                eventSources TEXT NOT NULL DEFAULT '[]',
                firstSeen REAL NOT NULL,
                lastSeen REAL NOT NULL,
                lastCycleStartedAt REAL NOT NULL,
                connected INTEGER NOT NULL DEFAULT 0,
                lastReportSeq INTEGER NOT NULL DEFAULT 0,
                -- Rows this host has in endpoint_state / runtime_state, kept by ingest so an unchanged
                -- set of endpoints needs no DELETE of dropped ones.
                endpointCount INTEGER NOT NULL DEFAULT 0,
                runtimeCount INTEGER NOT NULL DEFAULT 0
            );
            CREATE INDEX host_zone ON host(zone);
            CREATE INDEX host_egress ON host(egress);

            -- Latest probe outcome per host x endpoint. The registry is part of the key because one
            -- mirror URL may serve several registries, with different manifest probes.
            CREATE TABLE endpoint_state (
                hostId TEXT NOT NULL REFERENCES host(id) ON DELETE CASCADE,
                registry TEXT NOT NULL,
                endpoint TEXT NOT NULL,
                role TEXT NOT NULL,
                class TEXT NOT NULL,
                detail TEXT NOT NULL DEFAULT '',
                dnsMs REAL,
                connectMs REAL,
                tlsMs REAL,
                ttfbMs REAL,
                totalMs REAL,
                tlsTrusted INTEGER,
                tlsDaysLeft INTEGER,
                tlsExpiresAt REAL,
                rateLimitLimit INTEGER,
                rateLimitRemaining INTEGER,
                rateLimitWindowSeconds INTEGER,
                rateLimitSource TEXT,
                manifestReference TEXT,
                manifestStatus INTEGER,
                manifestDigest TEXT,
                checkedAt REAL NOT NULL,      -- agent clock
                observedAt REAL NOT NULL,     -- aggregator clock (report received)
                cycleStartedAt REAL NOT NULL, -- marks rows of the report that wrote them
                PRIMARY KEY (hostId, registry, endpoint)
            );

            -- Raw probe history, kept for a short retention and rolled up per minute.
            CREATE TABLE probe_sample (
                id INTEGER PRIMARY KEY,
                hostId TEXT NOT NULL,
                registry TEXT NOT NULL,
                endpoint TEXT NOT NULL,
                class TEXT NOT NULL,
                totalMs REAL,
                bucket INTEGER,               -- LatencyBuckets index of totalMs
                observedAt REAL NOT NULL      -- aggregator clock, so roll-up minutes are never late
            );
            CREATE INDEX probe_sample_observedAt ON probe_sample(observedAt);

            CREATE TABLE probe_minute (
                registry TEXT NOT NULL,
                endpoint TEXT NOT NULL,
                minute INTEGER NOT NULL,
                samples INTEGER NOT NULL,
                failures INTEGER NOT NULL,
                timedSamples INTEGER NOT NULL, -- samples with a totalMs
                sumMs REAL NOT NULL,
                minMs REAL,
                maxMs REAL,
                buckets TEXT NOT NULL,         -- {"bucket index": count}
                failureClasses TEXT NOT NULL,  -- {"class": count}, failing classes only
                PRIMARY KEY (registry, endpoint, minute)
            );
            CREATE INDEX probe_minute_minute ON probe_minute(minute);

            CREATE TABLE runtime_state (
                hostId TEXT NOT NULL REFERENCES host(id) ON DELETE CASCADE,
                runtime TEXT NOT NULL,
                mirrors TEXT NOT NULL,
                valid INTEGER NOT NULL,
                detail TEXT NOT NULL DEFAULT '',
                hash TEXT NOT NULL DEFAULT '',
                observedAt REAL NOT NULL,
                cycleStartedAt REAL NOT NULL,
                PRIMARY KEY (hostId, runtime)
            );

            -- No foreign key to host: events may arrive before the host's first report.
            CREATE TABLE pull_event (
                hostId TEXT NOT NULL,
                seq INTEGER NOT NULL,
                at REAL NOT NULL,
                image TEXT NOT NULL,
                registry TEXT NOT NULL,
                endpoint TEXT,
                result TEXT NOT NULL,
                class TEXT NOT NULL,
                detail TEXT NOT NULL DEFAULT '',
                source TEXT NOT NULL,
                receivedAt REAL NOT NULL,
                PRIMARY KEY (hostId, seq)
            );
            CREATE INDEX pull_event_at ON pull_event(at);

            -- Filled by correlation. AUTOINCREMENT: outage ids are shown to operators and never reused.
            CREATE TABLE outage (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                kind TEXT NOT NULL,
                state TEXT NOT NULL,
                endpoint TEXT,
                zone TEXT,
                host TEXT,
                egress TEXT,
                errorClass TEXT,
                affectedHosts INTEGER NOT NULL DEFAULT 0,
                totalHosts INTEGER NOT NULL DEFAULT 0,
                evidence TEXT NOT NULL DEFAULT '{}',
                startedAt REAL NOT NULL,
                endedAt REAL
            );
            CREATE INDEX outage_state ON outage(state);

            -- Filled by the failover controller.
            CREATE TABLE failover_plan (
                generation INTEGER PRIMARY KEY NOT NULL,
                state TEXT NOT NULL,
                reason TEXT NOT NULL DEFAULT '',
                mirrors TEXT NOT NULL DEFAULT '{}',
                createdAt REAL NOT NULL,
                updatedAt REAL NOT NULL
            );

            CREATE TABLE failover_ack (
                generation INTEGER NOT NULL REFERENCES failover_plan(generation) ON DELETE CASCADE,
                hostId TEXT NOT NULL,
                outcome TEXT NOT NULL,
                detail TEXT NOT NULL DEFAULT '',
                at REAL NOT NULL,
                PRIMARY KEY (generation, hostId)
            );
            """)
    }
}
