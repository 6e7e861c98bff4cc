# `make demo-tls` (examples/run.tls.sh): the demo's two SDKs serve wss://
# with certificates scripts/tls-certs.sh made for this run, require the
# agent's client certificate, and the agent (configured by
# examples/gen-nginx-conf.py from config.tls.json) verifies them: the
# panel simulator gets both acks and the heartbeats, and nothing is
# logged above info.  Run for a few seconds in a private prefix on free
# ports (DEMO_PREFIX, AGENT_PORT, SDK_START_PORT, DEMO_DURATION).  With
# the watch panel (`run.tls.sh watch`), which has no --duration of its
# own, DEMO_DURATION bounds the demo too.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use Test::AMonitor::Util qw(free_port);

my $root = "$FindBin::Bin/..";
for my $f ("$root/build/ngx_http_amonitor_module.so", "$root/build/amonitor",
    "$root/build/sdk/amonitor-sdk-example") {
    next if -e $f;
    fail("$f is built (make module tools build-sdk)");
    done_testing();
    exit;
}

my $prefix = tempdir('amon-demo-tls-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $agent = free_port();
my $sdk = free_port(2);

local $ENV{DEMO_PREFIX} = $prefix;
local $ENV{NO_BUILD} = 1;
local $ENV{AGENT_PORT} = $agent;
local $ENV{SDK_START_PORT} = $sdk;
local $ENV{DEMO_DURATION} = 7;

my $out = `timeout 90 bash '$root/examples/run.tls.sh' </dev/null 2>&1`;
is($? >> 8, 0, 'the TLS demo runs and stops cleanly') or diag($out);

sub slurp {
    my ($f) = @_;
    open(my $fh, '<', $f) or return '';
    local $/;
    return <$fh> // '';
}

my $conf = slurp("$prefix/nginx.conf");
like($conf, qr{amonitor_target demo-target-a wss://127\.0\.0\.1:$sdk/;},
    'the generated nginx.conf names wss:// targets');
like($conf, qr{amonitor_ssl_trusted_certificate certs/ca\.crt;},
    '... with the CA to verify them');
like($conf, qr{amonitor_ssl_certificate certs/agent\.crt;},
    '... and the agent\'s client certificate');
ok(-f "$prefix/certs/sdk.crt" && -f "$prefix/certs/agent.key",
    'the certificates were made in the prefix');

like($out, qr/TLS: SDKs serve wss:\/\//, 'the demo says it runs TLS');
for my $id (qw(demo-target-a demo-target-b)) {
    like($out, qr/recv\s+action_ack\s+\Q$id\E\s.*success=true/,
        "the simulator gets the ack of $id over wss://");
    like($out, qr/recv\s+heartbeat\s+\Q$id\E\s/, "and its heartbeats");
    my $log = slurp("$prefix/logs/sdk-$id.log");
    like($log, qr/TLSv1\.[23], server name ""/, "$id saw a TLS connection");
    unlike($log, qr/TLS handshake failed/,
        '... which presented the client certificate it requires');
}

my $err = slurp("$prefix/error.log");
unlike($err, qr/\[(?:error|crit|alert|emerg)\]/,
    'the agent logged nothing above warn') or diag($err);

# the watch panel: DEMO_DURATION ends it as it ends sim and bench
{
    local $ENV{DEMO_DURATION} = 3;
    my $t0 = time;
    $out = `timeout 60 bash '$root/examples/run.tls.sh' watch </dev/null 2>&1`;
    my $rc = $? >> 8;
    is($rc, 0, 'the watch panel stops after DEMO_DURATION, exit 0')
        or diag($out);
    ok(time - $t0 < 40, 'within the time limit') or diag($out);
    like($out, qr/DEMO_DURATION \(3 s\) is over/, 'the demo says why');
    like($out, qr/demo-target-a\s+up/, 'the watch panel showed the targets');
    like($out, qr/stopping nginx/, 'and the demo stopped nginx');
}

done_testing();
