import Foundation
import NIOCore
import PostgresNIO
import RegwatchShared

extension PostgresFleetStore {
    /// ``FleetStore/commit(_:)``'s contract on PostgreSQL: one transaction, newest report wins, events
    /// inserted once per `(hostId, seq)` and every seq of the batch returned only after `COMMIT` answered.
    ///
    /// Round trips are what cost here, not rows: the batch's hosts are read (and locked) in one query,
    /// every write is then sent without waiting for the one before (PostgreSQL runs them in order on
    /// the connection), and the answers are collected at the end.
    public func commit(_ batch: IngestBatch) throws(StoreError) -> IngestResult {
        if batch.isEmpty { return IngestResult() }
        return try write { c in
            var result = IngestResult()
            var pending: [EventLoopFuture<PostgresQueryResult>] = []
            func send(_ query: PostgresQuery) -> EventLoopFuture<PostgresQueryResult> {
                let f = c.query(query, logger: logger)
                pending.append(f)
                return f
            }

            // The stored host rows, locked so two aggregators writing one host take turns.
            struct Stored {
                var cycle: Double
                var runtimes: Int
                var zone: String?
                var egress: String?
                var probes: String
                var spoolDropped: Int?
            }
            var stored: [String: Stored] = [:]
            let ids = Array(Set(batch.reports.map(\.hostID)))
            if !ids.isEmpty {
                for row in try run(c, """
                    SELECT id, lastCycleStartedAt, runtimeCount, zone, egress, probes, spoolDropped FROM host WHERE id = ANY(\(ids)) FOR UPDATE
                    """) {
                    let (id, cycle, runtimes, zone, egress, probes, dropped) = try row.decode((String, Double, Int, String?, String?, String, Int?).self)
                    stored[id] = Stored(cycle: cycle, runtimes: runtimes, zone: zone, egress: egress, probes: probes, spoolDropped: dropped)
                }
            }

            for entry in batch.reports {
                let r = entry.report
                let host = entry.hostID
                let cycle = r.cycleStartedAt.unixSeconds
                let received = entry.receivedAt.unixSeconds
                let before = stored[host]
                if let before, cycle <= before.cycle {
                    _ = send("UPDATE host SET lastSeen = greatest(lastSeen, \(received)), connected = true WHERE id = \(host)")
                    result.reportsOutdated += 1
                    continue
                }
                let columns = entry.columns ?? IngestBatch.Columns(r)
                var previous = ProbeStateText.Previous()
                if var text = before?.probes { previous = text.withUTF8 { ProbeStateText.Previous($0) } }
                let latest = String(decoding: columns.latest.text(receivedAt: received, previous: previous), as: UTF8.self)
                let labels = String(decoding: columns.labels, as: UTF8.self)
                let pools = String(decoding: columns.mirrorPools, as: UTF8.self)
                let sources = String(decoding: columns.eventSources, as: UTF8.self)
                let runtimeCount = IngestBatch.distinctCount(r.runtimes) { $0.runtime == $1.runtime }
                let generation = Int64(bitPattern: r.appliedGeneration), seq = Int64(bitPattern: entry.seq)
                let spoolPending = r.spool?.pending, spoolDropped = r.spool?.dropped
                if let dropped = spoolDropped {
                    let was = before?.spoolDropped ?? 0
                    result.eventsDroppedByAgents += dropped >= was ? dropped - was : dropped
                }
                // Inserted, or updated only if this report is newer than what another aggregator may have
                // committed for the host since the read above (a host new to this batch is not locked).
                _ = send("""
                    INSERT INTO host (id, labels, zone, egress, agentVersion, intervalSeconds, appliedGeneration, mirrorPools, eventSources,
                                      firstSeen, lastSeen, lastCycleStartedAt, connected, lastReportSeq, runtimeCount, probes, probesObservedAt,
                                      spoolPending, spoolDropped)
                    VALUES (\(host), \(labels), \(r.host.zone), \(r.host.egress), \(r.agentVersion), \(r.intervalSeconds), \(generation),
                            \(pools), \(sources), \(received), \(received), \(cycle), true, \(seq), \(runtimeCount), \(latest), \(received),
                            \(spoolPending), \(spoolDropped))
                    ON CONFLICT (id) DO UPDATE SET labels = excluded.labels, zone = excluded.zone, egress = excluded.egress,
                        agentVersion = excluded.agentVersion, intervalSeconds = excluded.intervalSeconds,
                        appliedGeneration = excluded.appliedGeneration, mirrorPools = excluded.mirrorPools, eventSources = excluded.eventSources,
                        lastSeen = greatest(host.lastSeen, excluded.lastSeen), lastCycleStartedAt = excluded.lastCycleStartedAt, connected = true,
                        lastReportSeq = excluded.lastReportSeq, runtimeCount = excluded.runtimeCount, probes = excluded.probes,
                        probesObservedAt = excluded.probesObservedAt, spoolPending = excluded.spoolPending, spoolDropped = excluded.spoolDropped
                    WHERE host.lastCycleStartedAt < excluded.lastCycleStartedAt
                    """)
                if !r.probes.isEmpty {
                    let samples = String(decoding: columns.samples, as: UTF8.self)
                    _ = send("INSERT INTO probe_report (hostId, observedAt, probes) VALUES (\(host), \(received), \(samples))")
                }
                // The report's runtimes replace the stored ones; one named twice keeps its last state.
                if before != nil { _ = send("DELETE FROM runtime_state WHERE hostId = \(host) AND cycleStartedAt < \(cycle)") }
                for rt in r.runtimes {
                    let mirrors = StoreJSON.object(rt.mirrors)
                    _ = send("""
                        INSERT INTO runtime_state (hostId, runtime, mirrors, valid, detail, hash, observedAt, cycleStartedAt)
                        VALUES (\(host), \(rt.runtime.rawValue), \(mirrors), \(rt.valid), \(rt.detail), \(rt.hash), \(received), \(cycle))
                        ON CONFLICT (hostId, runtime) DO UPDATE SET mirrors = excluded.mirrors, valid = excluded.valid, detail = excluded.detail,
                            hash = excluded.hash, observedAt = excluded.observedAt, cycleStartedAt = excluded.cycleStartedAt
                        WHERE runtime_state.cycleStartedAt <= excluded.cycleStartedAt
                        """)
                }
                stored[host] = Stored(cycle: cycle, runtimes: runtimeCount, zone: r.host.zone, egress: r.host.egress, probes: latest,
                                      spoolDropped: spoolDropped)
                result.reportsStored += 1
            }

            var inserts: [(hostID: String, event: PullEvent, answer: EventLoopFuture<PostgresQueryResult>)] = []
            for entry in batch.events {
                let received = entry.receivedAt.unixSeconds
                for e in entry.events {
                    inserts.append((entry.hostID, e, send("""
                        INSERT INTO pull_event (hostId, seq, at, image, registry, endpoint, result, class, detail, source, receivedAt)
                        VALUES (\(entry.hostID), \(Int64(bitPattern: e.seq)), \(e.at.unixSeconds), \(e.image), \(e.registry), \(e.endpoint),
                                \(e.result.rawValue), \(e.errorClass.rawValue), \(e.detail), \(e.source), \(received))
                        ON CONFLICT (hostId, seq) DO NOTHING
                        """)))
                }
            }
            // Every answer, so a failure is the first statement's (the ones after it only say the
            // transaction is aborted) and nothing is left in flight when the transaction ends.
            var firstError: (any Error)?
            for f in pending {
                do { _ = try writer.wait(f, on: c) } catch { firstError = firstError ?? error }
            }
            if let firstError { throw firstError }
            for (hostID, e, answer) in inserts {
                if try writer.wait(answer, on: c).metadata.rows == 1 {
                    result.eventsInserted += 1
                    result.insertedByOutcome[.init(result: e.result.rawValue, errorClass: e.errorClass.rawValue), default: 0] += 1
                } else {
                    result.eventsDuplicate += 1
                }
                result.committedSeqs[hostID, default: []].append(e.seq)
            }
            return result
        }
    }
}
