"""Detector corpora: true positives (value that must be found) and known false positives.

TRUE_POSITIVES: detector -> list of (text, secret-substring). The substring must be
reported by that detector and must not survive redaction.
FALSE_POSITIVES: detector -> texts that must come out of redaction unchanged (nothing
found by any detector); each list holds the look-alikes that detector is most at risk of.
"""

TRUE_POSITIVES = {
    "email": [
        ("contact alice@example.com now", "alice@example.com"),
        ("From: Bob.Smith+tag@mail.co.uk", "Bob.Smith+tag@mail.co.uk"),
        ("<x_y-z@sub.domain.io>", "x_y-z@sub.domain.io"),
    ],
    "ipv4": [
        ("from 10.1.2.3 failed", "10.1.2.3"),
        ("peer=192.168.0.254:443", "192.168.0.254"),
        ("list 8.8.8.8,1.1.1.1", "1.1.1.1"),
        ("list 8.8.8.8,1.1.1.1", "8.8.8.8"),
        ("version 1.2.3.4 is an address shape", "1.2.3.4"),  # documented decision
    ],
    "ipv6": [
        ("client 2001:db8::1 connected", "2001:db8::1"),
        ("fe80::1ff:fe23:4567:890a%eth0", "fe80::1ff:fe23:4567:890a"),
        ("full 2001:0db8:85a3:0000:0000:8a2e:0370:7334", "2001:0db8:85a3:0000:0000:8a2e:0370:7334"),
        ("loopback ::1 only", "::1"),
        ("mapped ::ffff:10.0.0.1 here", "::ffff:10.0.0.1"),
    ],
    "phone": [
        ("call +1 555 123 4567", "+1 555 123 4567"),
        ("tel +44 20 7946 0958.", "+44 20 7946 0958"),
        ("office (555) 123-4567", "(555) 123-4567"),
        ("cell 555-123-4567", "555-123-4567"),
        ("de +4915112345678", "+4915112345678"),
    ],
    "card": [
        ("visa 4111 1111 1111 1111 ok", "4111 1111 1111 1111"),
        ("mc 5500-0000-0000-0004", "5500-0000-0000-0004"),
        ("raw 4012888888881881", "4012888888881881"),
        ("amex 3782 822463 10005", "3782 822463 10005"),
    ],
    "jwt": [
        ("auth eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
         "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
    ],
    "bearer": [
        ("Authorization: Bearer abcdefghijkl12345", "abcdefghijkl12345"),
        ("authorization: bearer AbC.dEf-123_456~xyz", "AbC.dEf-123_456~xyz"),
    ],
    "vendor_key": [
        ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
        ("gh ghp_1234567890abcdefghijABCDEFGHIJ123456", "ghp_1234567890abcdefghijABCDEFGHIJ123456"),
        ("slack xoxb-123456789012-abcdefghij", "xoxb-123456789012-abcdefghij"),
    ],
    "credential": [
        ("api_key=zx81Qq", "zx81Qq"),
        ('password: "hunter2"', "hunter2"),
        ("client_secret=s3cr3t-value", "s3cr3t-value"),
    ],
    "aws_key": [
        ("key AKIAIOSFODNN7EXAMPLE used", "AKIAIOSFODNN7EXAMPLE"),
        ("sts ASIAY34FZKBOKMUTVV7A", "ASIAY34FZKBOKMUTVV7A"),
    ],
    "aws_secret": [
        ("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
         "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ],
    "userinfo": [
        ("GET https://user:pa55@host.example.com/x", "user:pa55@"),
        ("postgres://admin:hunter2@db:5432/app", "admin:hunter2@"),
    ],
    "url_secret": [
        ("GET /cb?token=abc123&q=1", "abc123"),
        ("https://x.io/p?a=1&password=hunter2", "hunter2"),
        ("/reset?key=K3y9&sig=ZZ", "K3y9"),
    ],
    "pem": [
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n"
         "-----END RSA PRIVATE KEY-----",
         "MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu"),
    ],
}

FALSE_POSITIVES = {
    "uuid": ["request 550e8400-e29b-41d4-a716-446655440000 done",
             "id 12345678-1234-4234-1234-123456789012"],
    "timestamp": ["at 2024-01-15T12:30:45.123Z", "2024-01-15 12:30:45+02:00", "took 12:30:45"],
    "version": ["version 1.2.3", "v10.4.1-beta", "python 3.11.6"],
    "long_id": ["order 4111111111111112 failed",  # fails Luhn
                "ts_ms 1700000000000",  # starts with 1: never a card
                "trace 9876543210987654321"],
    "hex_hash": ["sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                 "commit d41d8cd98f00b204e9800998ecf8427e", "git 356a192b7913b04c54574d18c28d46e6395428ab"],
    "code": ["std::vector<int> v", "Foo::bar()", "ratio 3:2", "mac aa:bb:cc:dd:ee:ff"],
    "prose": ["the user retried three times", "status=503 latency=1200ms", "token expired",
              "password reset requested", "key rotation done", "http://example.com/path?q=1&page=2"],
    "numbers": ["range 100-200", "count 12345", "price 12.50", "date 2024-01-15", "555-1234"],
}
