# Configuration errors: every missing or contradictory configuration makes
# "nginx -t" fail with an [emerg] line that names the directive and the
# problem, at the file and line of the offending directive; a complete
# valid configuration passes.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

my $t = Test::AMonitor->new;

# a port nothing listens on: targets are only resolved, never dialed, by -t
my $P = $t->port(1);
my $Q = $t->port(2);

my $ZONE = "amonitor_zone amonitor 1m;\n";

# nginx -t on the parts; returns ($status, $output, $conf_path_of_error,
# $line_of_error, $text_of_that_line)
sub check {
    my (%parts) = @_;
    my ($st, $out) = $t->nginx_t(%parts);
    my ($file, $line) = $out =~ /\[emerg\] .* in (\S+):(\d+)\s*$/m;
    my $text;
    if ($file && open(my $fh, '<', $file)) {
        my @l = <$fh>;
        close $fh;
        $text = $l[$line - 1];
    }
    return ($st, $out, $file, $line, $text);
}

# one failing configuration: exit status, the exact [emerg] text, and the
# line it names holds the directive
sub fails_with {
    my ($name, $parts, $msg, $directive) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;

    subtest $name => sub {
        my ($st, $out, $file, $line, $text) = check(%$parts);
        isnt($st, 0, 'nginx -t fails');
        like($out, qr/^nginx: \[emerg\] \Q$msg\E in \S+nginx\.conf:\d+$/m,
            "the [emerg] line says: $msg")
            or diag($out);
        if (defined $directive) {
            like($text // '', qr/^\s*\Q$directive\E\b/,
                "the line it names ($line) is the \"$directive\" directive")
                or diag("line $line: " . ($text // 'none'));
        }
        unlike($out, qr/test is successful/, 'no "test is successful"');
    };
}

# --- amonitor_target --------------------------------------------------------

fails_with('duplicate target id',
    { http_config => $ZONE
        . "amonitor_target a ws://127.0.0.1:$P/;\n"
        . "amonitor_target a ws://127.0.0.1:$Q/;\n" },
    'duplicate target id "a"', 'amonitor_target a ws://127.0.0.1:' . $Q);

fails_with('two targets with the same URL',
    { http_config => $ZONE
        . "amonitor_target a ws://127.0.0.1:$P/;\n"
        . "amonitor_target b ws://127.0.0.1:$P/;\n" },
    qq{targets "a" and "b" have the same URL "ws://127.0.0.1:$P/"},
    'amonitor_target b');

fails_with('two targets with the same URL after normalisation '
    . '(no slash, upper-case host)',
    { http_config => $ZONE
        . "amonitor_target a ws://localhost:$P/;\n"
        . "amonitor_target b ws://LOCALHOST:$P;\n" },
    qq{targets "a" and "b" have the same URL "ws://LOCALHOST:$P"},
    'amonitor_target b');

fails_with('target URL with an http:// scheme',
    { http_config => $ZONE . "amonitor_target a http://127.0.0.1:$P/;\n" },
    qq{invalid target URL "http://127.0.0.1:$P/": expected }
    . 'ws://host[:port][/path]', 'amonitor_target a');

fails_with('target URL without a host',
    { http_config => $ZONE . "amonitor_target a ws://:$P/;\n" },
    qq{invalid target URL "ws://:$P/": expected ws://host[:port][/path]},
    'amonitor_target a');

fails_with('target URL with a port out of range',
    { http_config => $ZONE . "amonitor_target a ws://127.0.0.1:70000/;\n" },
    'invalid target URL "ws://127.0.0.1:70000/": expected '
    . 'ws://host[:port][/path]', 'amonitor_target a');

fails_with('wss:// target',
    { http_config => $ZONE . "amonitor_target a wss://127.0.0.1:$P/;\n" },
    qq{target URL "wss://127.0.0.1:$P/": wss:// is not supported},
    'amonitor_target a');

fails_with('third parameter that is not token=',
    { http_config => $ZONE
        . "amonitor_target a ws://127.0.0.1:$P/ secret=x;\n" },
    'invalid parameter "secret=x", expected "token=..."',
    'amonitor_target a');

fails_with('empty token=',
    { http_config => $ZONE
        . "amonitor_target a ws://127.0.0.1:$P/ token=;\n" },
    'invalid parameter "token=", expected "token=..."',
    'amonitor_target a');

fails_with('token with a space in it',
    { http_config => $ZONE
        . "amonitor_target a ws://127.0.0.1:$P/ \"token=a b\";\n" },
    'invalid token for target "a"', 'amonitor_target a');

fails_with('target id longer than 256 bytes',
    { http_config => $ZONE
        . "amonitor_target " . ('i' x 257) . " ws://127.0.0.1:$P/;\n" },
    'invalid target id "' . ('i' x 257) . '"', 'amonitor_target');

fails_with('unresolvable target host',
    { http_config => $ZONE
        . "amonitor_target a ws://no-such-host.invalid:$P/;\n" },
    qq{host not found in target URL "ws://no-such-host.invalid:$P/"},
    'amonitor_target a');

fails_with('amonitor_target without amonitor_zone',
    { http_config => "amonitor_target a ws://127.0.0.1:$P/;\n" },
    '"amonitor_target" requires "amonitor_zone"');

fails_with('amonitor_target with one argument',
    { http_config => $ZONE . "amonitor_target a;\n" },
    'invalid number of arguments in "amonitor_target" directive',
    'amonitor_target a');

fails_with('amonitor_target with four arguments',
    { http_config => $ZONE
        . "amonitor_target a ws://127.0.0.1:$P/ token=x extra;\n" },
    'invalid number of arguments in "amonitor_target" directive',
    'amonitor_target a');

fails_with('amonitor_target inside a server block',
    { http_config => $ZONE,
      config => "amonitor_target a ws://127.0.0.1:$P/;" },
    '"amonitor_target" directive is not allowed here', 'amonitor_target a');

# --- amonitor_zone ----------------------------------------------------------

fails_with('zone smaller than 32 pages',
    { http_config => "amonitor_zone amonitor 64k;\n" },
    'zone "amonitor" is too small: 64k, the minimum is 128k',
    'amonitor_zone');

fails_with('second amonitor_zone',
    { http_config => "amonitor_zone amonitor 1m;\namonitor_zone other 1m;\n" },
    '"amonitor_zone" directive is duplicate', 'amonitor_zone other');

fails_with('zone name already used by another module',
    { http_config => "limit_req_zone \$binary_remote_addr zone=amonitor:1m "
        . "rate=1r/s;\namonitor_zone amonitor 1m;\n" },
    'the shared memory zone "amonitor" is already declared for a '
    . 'different use', 'amonitor_zone');

fails_with('invalid zone size',
    { http_config => "amonitor_zone amonitor lots;\n" },
    'invalid zone size "lots"', 'amonitor_zone');

fails_with('amonitor_zone with one argument',
    { http_config => "amonitor_zone amonitor;\n" },
    'invalid number of arguments in "amonitor_zone" directive',
    'amonitor_zone');

# --- amonitor_panel ---------------------------------------------------------

subtest 'amonitor_panel without amonitor_zone names the file and line '
    . 'of the panel' => sub {
    my %parts = (http_config => '',
        config => "location /a { return 204; }\n"
            . "        location /ws/panel {\n"
            . "            amonitor_panel on;\n"
            . "        }");
    my ($st, $out) = $t->nginx_t(%parts);
    isnt($st, 0, 'nginx -t fails');
    my ($file, $line) = $out =~ /^nginx: \[emerg\] "amonitor_panel" in (\S+):(\d+) requires "amonitor_zone" in the http block$/m;
    ok($file, 'the [emerg] line says "amonitor_panel" in FILE:LINE '
        . 'requires "amonitor_zone" in the http block') or diag($out);
    like($file // '', qr{/nginx\.conf$}, 'the file is the configuration');
    my @l = do { open(my $fh, '<', $file // '/dev/null'); <$fh> };
    like($l[($line // 1) - 1] // '', qr/^\s*amonitor_panel on;/,
        'the line is the one of "amonitor_panel on"');
};

fails_with('amonitor_panel with a value other than on/off',
    { http_config => $ZONE,
      config => 'location /p { amonitor_panel maybe; }' },
    'invalid value "maybe" in "amonitor_panel" directive, it must be "on" '
    . 'or "off"', 'location /p');

fails_with('amonitor_panel in the http block',
    { http_config => $ZONE . "amonitor_panel on;\n" },
    '"amonitor_panel" directive is not allowed here', 'amonitor_panel');

fails_with('amonitor_status with an argument',
    { http_config => $ZONE, config => 'location /s { amonitor_status on; }' },
    'invalid number of arguments in "amonitor_status" directive',
    'location /s');

fails_with('amonitor_panel_token with two arguments',
    { http_config => $ZONE . "amonitor_panel_token a b;\n" },
    'invalid number of arguments in "amonitor_panel_token" directive',
    'amonitor_panel_token');

# --- timing and sizes -------------------------------------------------------

fails_with('reconnect maximum less than the minimum',
    { http_config => $ZONE . "amonitor_reconnect 2s 1s;\n" },
    'reconnect maximum "1s" is less than the minimum "2s"',
    'amonitor_reconnect');

fails_with('invalid reconnect minimum',
    { http_config => $ZONE . "amonitor_reconnect soon;\n" },
    'invalid reconnect delay "soon"', 'amonitor_reconnect');

fails_with('zero reconnect minimum',
    { http_config => $ZONE . "amonitor_reconnect 0;\n" },
    'invalid reconnect delay "0"', 'amonitor_reconnect');

fails_with('invalid reconnect maximum',
    { http_config => $ZONE . "amonitor_reconnect 100ms later;\n" },
    'invalid reconnect delay "later"', 'amonitor_reconnect');

fails_with('amonitor_reconnect with three arguments',
    { http_config => $ZONE . "amonitor_reconnect 1s 2s 3s;\n" },
    'invalid number of arguments in "amonitor_reconnect" directive',
    'amonitor_reconnect');

fails_with('amonitor_dedupe_ttl below 1s',
    { http_config => $ZONE . "amonitor_dedupe_ttl 500ms;\n" },
    '"amonitor_dedupe_ttl" must be at least 1s');

fails_with('invalid amonitor_dedupe_ttl',
    { http_config => $ZONE . "amonitor_dedupe_ttl forever;\n" },
    '"amonitor_dedupe_ttl" directive invalid value', 'amonitor_dedupe_ttl');

fails_with('zero amonitor_ack_timeout',
    { http_config => $ZONE . "amonitor_ack_timeout 0;\n" },
    '"amonitor_ack_timeout" must not be zero');

fails_with('amonitor_max_message_size below 1k',
    { http_config => $ZONE . "amonitor_max_message_size 1000;\n" },
    '"amonitor_max_message_size" must be between 1k and 64m');

fails_with('amonitor_max_message_size above 64m',
    { http_config => $ZONE . "amonitor_max_message_size 65m;\n" },
    '"amonitor_max_message_size" must be between 1k and 64m');

for my $n (15, 1048577) {
    fails_with("amonitor_send_queue $n (out of 16..1048576)",
        { http_config => $ZONE . "amonitor_send_queue $n;\n" },
        '"amonitor_send_queue" must be between 16 and 1048576',
        "amonitor_send_queue $n");
}

fails_with('amonitor_ping with two arguments',
    { http_config => $ZONE . "amonitor_ping 1s 2s;\n" },
    'invalid number of arguments in "amonitor_ping" directive',
    'amonitor_ping');

# --- amonitor_allow_url -----------------------------------------------------

for my $bad ('http://127.0.0.1:*', 'ws://127.0.0.1', 'ws://:8765',
    'ws://127.0.0.1:0', 'ws://127.0.0.1:65536', 'ws://127.0.0.1:port',
    'ws://[::1', 'ws://')
{
    fails_with("amonitor_allow_url $bad",
        { http_config => $ZONE . "amonitor_allow_url $bad;\n" },
        qq{invalid URL pattern "$bad": expected ws://host:port or }
        . 'ws://host:*', 'amonitor_allow_url');
}

# --- limits that are accepted -----------------------------------------------

subtest 'values at the limits are accepted' => sub {
    for my $c ("amonitor_zone amonitor 128k;",
        "amonitor_zone amonitor 1m;\namonitor_dedupe_ttl 1s;",
        "amonitor_zone amonitor 1m;\namonitor_max_message_size 1k;",
        "amonitor_zone amonitor 1m;\namonitor_max_message_size 64m;",
        "amonitor_zone amonitor 1m;\namonitor_send_queue 16;",
        "amonitor_zone amonitor 1m;\namonitor_send_queue 1048576;",
        "amonitor_zone amonitor 1m;\namonitor_reconnect 1s;",
        "amonitor_zone amonitor 1m;\namonitor_reconnect 1s 1s;",
        "amonitor_zone amonitor 1m;\namonitor_ping 0;",
        "amonitor_zone amonitor 1m;\n"
            . "amonitor_target " . ('i' x 256) . " ws://127.0.0.1:$P/;")
    {
        my ($st, $out) = $t->nginx_t(http_config => $c);
        (my $n = $c) =~ s/\n/ /g;
        is($st, 0, "accepted: $n") or diag($out);
    }
};

subtest 'a complete valid configuration passes nginx -t' => sub {
    my ($st, $out) = $t->nginx_t(
        http_config => <<"EOC",
    amonitor_zone        amonitor 16m;
    amonitor_target      demo-target-a ws://127.0.0.1:$P/;
    amonitor_target      demo-target-b ws://localhost:$Q/sdk token=s3cr3t;
    amonitor_dedupe_ttl  24h;
    amonitor_ack_timeout 10s;
    amonitor_connect_timeout 5s;
    amonitor_reconnect   200ms 10s;
    amonitor_ping        20s;
    amonitor_max_message_size 1m;
    amonitor_send_queue  1024;
    amonitor_allow_url   ws://127.0.0.1:*;
    amonitor_allow_url   ws://[::1]:8765/sdk;
    amonitor_panel_token http-level-token;
EOC
        config => <<'EOC',
        amonitor_panel_token server-level-token;
        location = /ws/panel       { amonitor_panel on; amonitor_panel_token secret; }
        location = /ws/open        { amonitor_panel on; }
        location = /ws/off         { amonitor_panel off; }
        location = /amonitor/status { amonitor_status; }
        location = /healthz        { return 200 "ok\n"; }
EOC
    );
    is($st, 0, 'nginx -t exits 0') or diag($out);
    like($out, qr/syntax is ok/, 'syntax is ok');
    like($out, qr/test is successful/, 'test is successful');
    unlike($out, qr/\[(?:emerg|alert|crit|warn)\]/,
        'no [emerg], [alert], [crit] or [warn]');
};

subtest 'a valid configuration with amonitor_zone alone starts and stops'
    => sub {
    $t->write_config(http_config => "amonitor_zone amonitor 1m;",
        config => 'location = /ws/panel { amonitor_panel on; }');
    ok($t->try_run, 'nginx starts') or diag($t->start_error);
    ok($t->stop, 'nginx stops on QUIT');
};

done_testing();
