// A small HTTP client for the capture job, on libcurl: one HttpClient per worker thread
// (a curl easy handle keeps its connection alive between requests), JSON POST and GET with
// a connect and a total time-out, and retries with exponential back-off on connection
// errors, time-outs and 5xx answers. Not a general HTTP library; no hand-written HTTP.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

namespace moe::analysis {

struct HttpOptions {
    double timeout_s = 600;         // whole request (a long prompt with generation can take a while)
    double connect_timeout_s = 10;
    int retries = 5;                // further attempts after the first on retryable failures
    double backoff_s = 1.0;         // first wait; doubled per attempt, at most 30 s
};

struct HttpResponse {
    long status = 0;   // HTTP status; 0 when no answer came
    std::string body;
    std::string error;  // curl's message when no answer came
};

class HttpClient {
public:
    explicit HttpClient(const HttpOptions& opt);
    ~HttpClient();
    HttpClient(const HttpClient&) = delete;
    HttpClient& operator=(const HttpClient&) = delete;

    // One attempt, no retry.
    HttpResponse get(const std::string& url, double timeout_s);
    HttpResponse post_json(const std::string& url, const std::string& body, double timeout_s);
    // POST with retries on connection errors, time-outs and 5xx; `stop` (when set) ends the
    // waiting between attempts. Returns the last answer; `attempts` receives how many were made.
    HttpResponse post_json_retrying(const std::string& url, const std::string& body, const std::atomic<bool>* stop,
                                    int* attempts = nullptr);

private:
    HttpResponse perform(const std::string& url, const std::string* body, double timeout_s);
    HttpOptions opt_;
    void* curl_ = nullptr;  // CURL*
};

}  // namespace moe::analysis
