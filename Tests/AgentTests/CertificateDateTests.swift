import Foundation
@testable import RegwatchAgent
import Testing

@Suite("Certificate dates")
struct CertificateDateTests {
    @Test("curl's OpenSSL and ISO forms, single- and double-spaced days, leap-year February")
    func parses() {
        #expect(ProbeClassification.certificateDate("Dec 29 00:23:11 2026 GMT")?.timeIntervalSince1970 == 1_798_503_791)
        #expect(ProbeClassification.certificateDate("Feb  5 12:00:00 2024 GMT")?.timeIntervalSince1970 == 1_707_134_400)
        #expect(ProbeClassification.certificateDate("2030-03-01 23:59:59 GMT")?.timeIntervalSince1970 == 1_898_639_999)
    }

    @Test("garbage is nil, not a wrong date")
    func rejects() {
        for text in ["", "Foo 29 00:23:11 2026 GMT", "Dec 32 00:23:11 2026 GMT", "Dec 29 25:00:00 2026 GMT", "2030-13-01 00:00:00 GMT", "Dec 29 2026"] {
            #expect(ProbeClassification.certificateDate(text) == nil, "\(text)")
        }
    }

    @Test("days left are whole days, rounded down")
    func daysLeft() throws {
        let now = Date(timeIntervalSince1970: 1_798_503_791 - 86400 * 10 - 3600)
        let (days, _) = try #require(ProbeClassification.expiry(["Expire date": "Dec 29 00:23:11 2026 GMT"], now: now))
        #expect(days == 10)
    }
}
