import Foundation
@testable import RegwatchShared
import Testing

@Suite("Error classifier")
struct ClassifierTests {
    struct Entry: Sendable, CustomTestStringConvertible {
        var expected: ErrorClass
        var message: String
        var testDescription: String { "\(expected.rawValue): \(message.prefix(80))" }
    }

    static let catalogue: [Entry] = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/classifier/catalogue.tsv")
        let text = (try? String(contentsOf: url, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            guard !line.hasPrefix("#"), let tab = line.firstIndex(of: "\t") else { return nil }
            let cls = ErrorClass(rawValue: String(line[..<tab]))!
            return Entry(expected: cls, message: String(line[line.index(after: tab)...]))
        }
    }()

    @Test("every message of the catalogue", arguments: catalogue)
    func catalogueLine(_ entry: Entry) {
        #expect(ErrorClassifier.classify(message: entry.message) == entry.expected)
    }

    @Test("the catalogue covers every class a runtime message can carry")
    func coverage() {
        let covered = Set(Self.catalogue.map(\.expected))
        let notFromMessages: Set<ErrorClass> = [.ok, .configInvalid, .unknown]
        #expect(Set(ErrorClass.allCases).subtracting(notFromMessages).subtracting(covered).isEmpty)
        #expect(Self.catalogue.count >= 50)
    }

    @Test("messages nobody recognises are unknown")
    func unknownMessages() {
        #expect(ErrorClassifier.classify(message: "the flux capacitor is misaligned") == .unknown)
        #expect(ErrorClassifier.classify(message: "") == .unknown)
        // Port numbers are not statuses.
        #expect(ErrorClassifier.classify(message: "copying blob from 10.0.0.7:40123 stalled") == .unknown)
    }

    @Test("registry error bodies and codes")
    func registryErrors() {
        let body = Array(#"{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your unauthenticated pull rate limit."}]}"#.utf8)
        #expect(ErrorClassifier.classify(registryErrorBody: body) == .rateLimited)
        #expect(ErrorClassifier.classify(registryErrorBody: Array(#"{"errors":[{"code":"MANIFEST_UNKNOWN"}]}"#.utf8)) == .notFound)
        #expect(ErrorClassifier.classify(registryErrorBody: Array(#"{"errors":[{"code":"UNAUTHORIZED"}]}"#.utf8)) == .authFailed)
        #expect(ErrorClassifier.classify(registryErrorBody: Array(#"{"errors":[{"code":"DENIED"}]}"#.utf8)) == .accessDenied)
        #expect(ErrorClassifier.classify(registryErrorBody: Array("<html>".utf8)) == nil)
        #expect(ErrorClassifier.classify(registryErrorCode: "UNAVAILABLE") == .serverError)
    }

    @Test("HTTP statuses depend on what was asked")
    func statuses() {
        #expect(ErrorClassifier.classify(httpStatus: 401, kind: .ping) == nil)
        #expect(ErrorClassifier.classify(httpStatus: 401, kind: .manifest) == .authFailed)
        #expect(ErrorClassifier.classify(httpStatus: 404, kind: .ping) == .notRegistry)
        #expect(ErrorClassifier.classify(httpStatus: 302, kind: .ping) == .notRegistry)
        #expect(ErrorClassifier.classify(httpStatus: 404, kind: .manifest) == .notFound)
        #expect(ErrorClassifier.classify(httpStatus: 429, kind: .manifest) == .rateLimited)
        #expect(ErrorClassifier.classify(httpStatus: 503, kind: .token) == .serverError)
        #expect(ErrorClassifier.classify(httpStatus: 200, kind: .manifest) == nil)
    }
}
