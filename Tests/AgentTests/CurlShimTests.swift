import CCurl
import Testing

@Suite("libcurl shim")
struct CurlShimTests {
    @Test("the linked libcurl has what the probes need: TLS, HTTP/2, unix sockets, async DNS")
    func features() throws {
        let info = try #require(ccurl_version_info()?.pointee)
        let features = Int32(info.features)
        #expect(features & CURL_VERSION_SSL != 0)
        #expect(features & CURL_VERSION_HTTP2 != 0)
        #expect(features & CURL_VERSION_UNIX_SOCKETS != 0)
        #expect(features & CURL_VERSION_ASYNCHDNS != 0)
        #expect(String(cString: info.ssl_version).hasPrefix("OpenSSL"))
    }

    @Test("typed setopt/getinfo pass-throughs reach libcurl")
    func passThrough() throws {
        let handle = try #require(curl_easy_init())
        defer { curl_easy_cleanup(handle) }
        #expect(ccurl_easy_setopt_string(handle, CURLOPT_URL, "http://127.0.0.1:9/v2/") == CURLE_OK)
        #expect(ccurl_easy_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, 2000) == CURLE_OK)
        #expect(ccurl_easy_setopt_long(handle, CURLOPT_NOSIGNAL, 1) == CURLE_OK)
        // Port 9 (discard) on loopback is closed here: a real refused connection, classified later as tcp_refused.
        let rc = curl_easy_perform(handle)
        #expect(rc == CURLE_COULDNT_CONNECT)
        var code: Int = -1
        #expect(ccurl_easy_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK)
        #expect(code == 0)
        var url: UnsafePointer<CChar>?
        #expect(ccurl_easy_getinfo_string(handle, CURLINFO_EFFECTIVE_URL, &url) == CURLE_OK)
        #expect(url.map { String(cString: $0) } == "http://127.0.0.1:9/v2/")
    }
}
