# TLS on both legs, with certificates made here by the openssl command: the
# agent dials wss:// SDKs (the C SDK's example program) through nginx's
# SSL, verifies them against amonitor_ssl_trusted_certificate, presents
# its client certificate and sends SNI; a certificate from another CA or
# for another name is an error line and TARGET_UNAVAILABLE for actions;
# an allowed wss:// URL is dialed on demand; panels reach the agent over
# nginx's "listen ... ssl"; the configuration errors of amonitor_ssl_*.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Interop qw(events run_panel);
use POSIX qw(WNOHANG);
use IO::Select;
use IO::Socket::INET;

my $ROOT = $Test::AMonitor::REPO;
my $EXAMPLE = "$ROOT/build/sdk/amonitor-sdk-example";
my $PY = '/usr/bin/python3';

# Python's websockets is the independent TLS peer on both legs (as t/120)
`$PY -c 'import websockets' 2>&1`;
if ($? != 0) {
    fail("$PY with the websockets module is needed (python3-websockets)");
    done_testing();
    exit;
}

if (!-x $EXAMPLE) {
    fail("$EXAMPLE is built (make build-sdk)");
    done_testing();
    exit;
}

my $t = Test::AMonitor->new(workers => 1);
my $dir = $t->prefix . '/pki';
my @SDKS;

sub sh {
    my ($cmd) = @_;
    my $out = `$cmd 2>&1`;
    die "$cmd: $out" if $?;
    return $out;
}

# a CA, and a certificate it signs: (name, CN, subjectAltName, CA)
sub make_ca {
    my ($name) = @_;
    sh("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "
        . "'/CN=$name' -keyout '$dir/$name.key' -out '$dir/$name.crt'");
}

sub make_cert {
    my ($name, $cn, $san, $ca, $usage) = @_;
    open(my $fh, '>', "$dir/$name.ext") or die "$name.ext: $!";
    print $fh "subjectAltName=$san\nextendedKeyUsage=$usage\n";
    close $fh;
    sh("openssl req -newkey rsa:2048 -nodes -subj '/CN=$cn' "
        . "-keyout '$dir/$name.key' -out '$dir/$name.csr'");
    sh("openssl x509 -req -days 2 -in '$dir/$name.csr' -CA '$dir/$ca.crt' "
        . "-CAkey '$dir/$ca.key' -CAcreateserial -out '$dir/$name.crt' "
        . "-extfile '$dir/$name.ext'");
}

mkdir $dir or die "$dir: $!";
make_ca('ca');
make_ca('other-ca');
make_cert('sdk', 'sdk.test', 'DNS:sdk.test,IP:127.0.0.1', 'ca', 'serverAuth');
make_cert('rogue', 'sdk.test', 'DNS:sdk.test,IP:127.0.0.1', 'other-ca',
    'serverAuth');
make_cert('agent', 'agent', 'DNS:agent', 'ca', 'clientAuth');
make_cert('panel', 'panel', 'IP:127.0.0.1', 'ca', 'serverAuth');

sub start_sdk {
    my (%o) = @_;
    my $log = $t->prefix . "/sdk-$o{id}.log";
    my @cmd = ($EXAMPLE, '--port', $o{port}, '--target-id', $o{id},
        '--interval', 0.3, ($o{cert} ? ('--tls-cert', "$dir/$o{cert}.crt",
        '--tls-key', "$dir/$o{cert}.key") : ()),
        ($o{client_ca} ? ('--tls-client-ca', "$dir/$o{client_ca}.crt") : ()));
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        # as a program starts: the test's event loop ignores SIGPIPE
        $SIG{PIPE} = 'DEFAULT';
        open(STDOUT, '>', $log) or POSIX::_exit(126);
        open(STDERR, '>&', \*STDOUT);
        exec(@cmd) or POSIX::_exit(127);
    }
    my $sdk = { pid => $pid, log => $log, id => $o{id} };
    push @SDKS, $sdk;
    my $scheme = $o{cert} ? 'wss' : 'ws';
    ok(wait_for(sub { sdk_log($sdk) =~ /serving $scheme:/ }, tscale(5)),
        "SDK $o{id} serves $scheme://");
    return $sdk;
}

# A plain HTTP server in a process of its own, so that it answers at once
# even while this test is busy: "400 Bad Request" to whatever arrives,
# then it reads until the client closes (no reset before the answer).
sub start_http_server {
    my ($port) = @_;
    my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
        LocalPort => $port, Listen => 16, ReuseAddr => 1)
        or die "listen on $port: $!";
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        while (my $c = $l->accept) {
            my $buf;
            sysread($c, $buf, 4096);
            syswrite($c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                . "Connection: close\r\n\r\n");
            shutdown($c, 1);
            my $sel = IO::Select->new($c);
            while ($sel->can_read(2)) {
                last unless sysread($c, $buf, 4096);
            }
            close($c);
        }
        POSIX::_exit(0);
    }
    close($l);
    push @SDKS, { pid => $pid, id => 'http' };
    return;
}

sub sdk_log {
    my ($sdk) = @_;
    open(my $fh, '<', $sdk->{log}) or return '';
    local $/;
    return <$fh> // '';
}

sub stop_sdks {
    for my $sdk (@SDKS) {
        next unless $sdk->{pid};
        kill 'TERM', $sdk->{pid};
        wait_for(sub { waitpid($sdk->{pid}, WNOHANG) != 0 }, tscale(5))
            or do { kill 'KILL', $sdk->{pid}; waitpid($sdk->{pid}, 0) };
        $sdk->{pid} = undef;
    }
}

my $n = 0;

sub action {
    my ($p, %o) = @_;
    my $id = 'tls-' . ++$n;
    $p->send_json({ msg_id => $id, type => 'action',
        (defined $o{target} ? (target_id => $o{target}) : ()),
        payload => { action => 'restart', params => {},
            (defined $o{url} ? (target_url => $o{url}) : ()) } });
    return $p->recv_until(sub {
        my $j = $_[0]{json};
        ref $j eq 'HASH'
            && (($j->{type} // '') eq 'error' && ($j->{msg_id} // '') eq $id
            || ($j->{type} // '') eq 'action_ack'
            && ($j->{payload}{action_msg_id} // '') eq $id);
    }, tscale(10));
}

# --- the SDK's TLS setup errors ----------------------------------------------

my $bad = `'$EXAMPLE' --port 0 --tls-cert '$dir/nope.crt' --tls-key '$dir/sdk.key' 2>&1`;
is($? >> 8, 2, 'the SDK refuses a certificate file it cannot load');
like($bad, qr/cannot load certificate ".*nope\.crt"/, '... and names it');
$bad = `'$EXAMPLE' --port 0 --tls-cert '$dir/sdk.crt' --tls-key '$dir/agent.key' 2>&1`;
is($? >> 8, 2, 'the SDK refuses a key that does not match the certificate');
like($bad, qr/cannot load key ".*agent\.key"/, '... and names it');

# --- configuration errors ---------------------------------------------------

my ($rc, $out) = $t->nginx_t(http_config => "amonitor_zone amonitor 1m;\n"
    . "amonitor_target a wss://127.0.0.1:%%PORT_1%%/;");
isnt($rc, 0, 'nginx -t fails: wss:// target, verify on, no trusted CA');
like($out, qr/\[emerg\] "amonitor_ssl_verify" is on but no "amonitor_ssl_trusted_certificate" is set/,
    '... and says so');

($rc, $out) = $t->nginx_t(http_config => "amonitor_zone amonitor 1m;\n"
    . "amonitor_ssl_verify off;\n"
    . "amonitor_allow_url wss://127.0.0.1:%%PORT_1%%/;\n"
    . "amonitor_ssl_certificate $dir/agent.crt;");
isnt($rc, 0, 'nginx -t fails: a client certificate without its key');
like($out, qr/\[emerg\] no "amonitor_ssl_certificate_key" is defined for certificate/,
    '... and says so');

# the pair is checked whether or not a wss:// URL is configured
($rc, $out) = $t->nginx_t(http_config => "amonitor_zone amonitor 1m;\n"
    . "amonitor_ssl_certificate $dir/agent.crt;");
isnt($rc, 0, 'nginx -t fails: a client certificate without its key, no wss://');
like($out, qr/\[emerg\] no "amonitor_ssl_certificate_key" is defined for certificate/,
    '... and says so');

($rc, $out) = $t->nginx_t(http_config => "amonitor_zone amonitor 1m;\n"
    . "amonitor_ssl_certificate_key $dir/agent.key;");
isnt($rc, 0, 'nginx -t fails: a key without its certificate');
like($out, qr/\[emerg\] "amonitor_ssl_certificate_key" "[^"]*agent\.key" is set but no "amonitor_ssl_certificate"/,
    '... and says so');

($rc, $out) = $t->nginx_t(http_config => "amonitor_zone amonitor 1m;\n"
    . "amonitor_ssl_trusted_certificate $dir/ca.crt;\n"
    . "amonitor_ssl_protocols TLSv1.2 TLSv1.3;\n"
    . "amonitor_target a wss://127.0.0.1:%%PORT_1%%/;");
is($rc, 0, 'nginx -t passes with a trusted CA') or diag($out);

($rc, $out) = $t->nginx_t(http_config => "amonitor_zone amonitor 1m;\n"
    . "amonitor_ssl_protocols TLSv9;");
isnt($rc, 0, 'nginx -t fails: an unknown protocol');
like($out, qr/\[emerg\] invalid value "TLSv9"/, '... and says so');

# plain configurations never need a CA
($rc, $out) = $t->nginx_t(http_config => "amonitor_zone amonitor 1m;\n"
    . "amonitor_target a ws://127.0.0.1:%%PORT_1%%/;");
is($rc, 0, 'nginx -t: ws:// targets need no amonitor_ssl_*') or diag($out);

# --- the agent: verification, client certificate, SNI ----------------------

my $ok = start_sdk(id => 'sdk-ok', port => $t->port(1), cert => 'sdk',
    client_ca => 'ca');
my $rogue = start_sdk(id => 'sdk-rogue', port => $t->port(2),
    cert => 'rogue');
my $named = start_sdk(id => 'sdk-named', port => $t->port(3),
    cert => 'sdk');
my $dial = start_sdk(id => 'sdk-dial', port => $t->port(5), cert => 'sdk');
my $py = Test::AMonitor::Interop::start_sdk(
    run => [$PY, "$FindBin::Bin/interop/sdk.py"], port => $t->port(8),
    log => $t->prefix . '/py-sdk.log',
    args => { 'target-id' => 'py-tls', 'hb-interval' => 0.3,
        'tls-cert' => "$dir/sdk.crt", 'tls-key' => "$dir/sdk.key" });

$t->write_config(
    http_config => "amonitor_zone amonitor 1m;\n"
        . "amonitor_reconnect 50ms 300ms;\n"
        . "amonitor_ssl_trusted_certificate $dir/ca.crt;\n"
        . "amonitor_ssl_certificate $dir/agent.crt;\n"
        . "amonitor_ssl_certificate_key $dir/agent.key;\n"
        . "amonitor_target sdk-ok wss://127.0.0.1:%%PORT_1%%/;\n"
        . "amonitor_target sdk-rogue wss://127.0.0.1:%%PORT_2%%/;\n"
        . "amonitor_target sdk-named wss://localhost:%%PORT_3%%/;\n"
        . "amonitor_target py-tls wss://127.0.0.1:%%PORT_8%%/;\n"
        . "amonitor_allow_url ws://127.0.0.1:%%PORT_5%%/;\n"
        . "amonitor_allow_url wss://127.0.0.1:%%PORT_5%%/dial;\n"
        . "server {\n"
        . "    listen 127.0.0.1:%%PORT_4%% ssl;\n"
        . "    ssl_certificate $dir/panel.crt;\n"
        . "    ssl_certificate_key $dir/panel.key;\n"
        . "    location = /ws/panel { amonitor_panel on; }\n"
        . "}",
    config => 'location = /ws/panel { amonitor_panel on; }',
)->run;

ok(wait_for(sub { sdk_log($ok) =~ /agent connected/ }, tscale(5)),
    'the agent connects to a wss:// SDK that requires a client certificate');
like(sdk_log($ok), qr/TLSv1\.[23], server name ""/,
    '... over TLS, without SNI for an IP address');

my $p = $t->panel('/ws/panel');
my $hb = $p->recv_type('heartbeat', target_id => 'sdk-ok', timeout => tscale(5));
ok($hb, 'heartbeats of the wss:// SDK reach a panel');

my $r = action($p, target => 'sdk-ok');
is($r && $r->{json}{type}, 'action_ack', 'an action over wss:// is acked');
is($r && $r->{json}{payload}{success} ? 1 : 0, 1, '... successfully');

$t->error_log_like(qr/\[error\].*TLS verification of the SDK failed: certificate verify error: \(\d+:[^)]+\).*upstream: sdk-rogue/,
    'a certificate from another CA: an error line naming the target and the verify error');
$r = action($p, target => 'sdk-rogue');
is($r && $r->{json}{type}, 'error', 'an action to it is refused');
is($r && $r->{json}{payload}{code}, 'TARGET_UNAVAILABLE', '... TARGET_UNAVAILABLE');
like($r && $r->{json}{payload}{message}, qr/TLS verification of the target failed/,
    '... saying TLS verification failed');
unlike(sdk_log($rogue), qr/agent connected/,
    'the SDK with the other CA\'s certificate never gets a WebSocket');
ok(waitpid($rogue->{pid}, WNOHANG) == 0 && kill(0, $rogue->{pid}),
    'and keeps running') or diag(sdk_log($rogue));

# a client that closes right after the handshake, before the SDK's
# session tickets: the SDK's write must raise no SIGPIPE in it
my $port1 = $t->port(1);
for (1 .. 5) {
    system('/usr/bin/python3', '-c', 'import socket, ssl, sys
c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
c.check_hostname = False
c.verify_mode = ssl.CERT_NONE
s = c.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))),
    server_hostname="sdk.test")
s.close()', $port1);
}
sleep_loop(0.5);
ok(waitpid($ok->{pid}, WNOHANG) == 0 && kill(0, $ok->{pid}),
    'an SDK whose TLS clients close at once keeps running (no SIGPIPE)')
    or diag(sdk_log($ok));
$r = action($p, target => 'sdk-ok');
is($r && $r->{json}{type}, 'action_ack', 'and still acks the agent\'s actions');

# the rogue SDK gone: its connection is refused, which actions now say
kill 'TERM', $rogue->{pid};
waitpid($rogue->{pid}, 0);
$rogue->{pid} = undef;
ok(wait_for(sub {
    $r = action($p, target => 'sdk-rogue');
    ($r && $r->{json}{payload}{message} // '') !~ /TLS/;
}, tscale(8)), 'once its dials are refused, an action to it no longer says '
    . 'TLS verification failed') or diag(explain($r && $r->{json}));
is($r && $r->{json}{payload}{code}, 'TARGET_UNAVAILABLE',
    '... TARGET_UNAVAILABLE');

$t->error_log_like(qr/\[error\].*TLS verification of the SDK failed: certificate does not match "localhost".*upstream: sdk-named/,
    'a certificate for another name: an error line naming the target');
like(sdk_log($named), qr/server name "localhost"/,
    '... the agent sent the URL\'s host in SNI');
$r = action($p, target => 'sdk-named');
is($r && $r->{json}{payload}{code}, 'TARGET_UNAVAILABLE',
    '... and an action to it gets TARGET_UNAVAILABLE');
like($r && $r->{json}{payload}{message}, qr/TLS verification/,
    '... saying TLS verification failed');

# on-demand dials: wss:// only through a wss:// pattern
$r = action($p, url => 'wss://127.0.0.1:' . $t->port(5) . '/');
is($r && $r->{json}{payload}{code}, 'TARGET_URL_NOT_ALLOWED',
    'a ws:// pattern does not allow the wss:// URL');
$r = action($p, url => 'wss://127.0.0.1:' . $t->port(5) . '/dial');
is($r && $r->{json}{type}, 'action_ack',
    'an allowed wss:// URL is dialed on demand and the action acked')
    or diag(explain($r && $r->{json}));

$p->close if $p->can('close');

# a panel over nginx's listen ... ssl, with Mojo verifying our CA
Test::AMonitor::Panel::_ua()->ca("$dir/ca.crt");
my ($sp, $res) = Test::AMonitor::Panel->open(
    'wss://127.0.0.1:' . $t->port(4) . '/ws/panel');
ok($sp, 'a panel connects over wss:// (listen ... ssl)')
    or diag(explain($res));
SKIP: {
    skip 'no TLS panel', 2 unless $sp;
    ok($sp->recv_type('heartbeat', target_id => 'sdk-ok', timeout => tscale(5)),
        '... and gets the heartbeats');
    $r = action($sp, target => 'sdk-ok');
    is($r && $r->{json}{type}, 'action_ack', '... and its actions acked');
}

# Python's websockets on both legs: its wss:// server as the SDK, its
# client as a panel over listen ... ssl
ok(wait_for(sub { events($py, 'connect') >= 1 }, tscale(5)),
    'the agent connects to a Python websockets wss:// SDK');
my @pr = run_panel([$PY, "$FindBin::Bin/interop/panel.py"],
    'wss://127.0.0.1:' . $t->port(4) . '/ws/panel', '--cafile',
    "$dir/ca.crt", '--target', 'py-tls', 'wait-type:heartbeat',
    'action:py-tls-1:restart');
ok($pr[0] && $pr[0]{ok}, 'a Python websockets panel connects over wss://')
    or diag(explain(\@pr));
ok($pr[1] && $pr[1]{ok}, '... gets a heartbeat');
like($pr[2] && $pr[2]{text} // '', qr/"type"\s*:\s*"action_ack"/,
    '... and the ack of its action to the Python SDK over wss://');

# the CLI over wss://
my $CLI = "$ROOT/build/amonitor";
my $url = 'wss://127.0.0.1:' . $t->port(4) . '/ws/panel';
my $cli = `'$CLI' send --url '$url' --ca '$dir/ca.crt' --target-id sdk-ok --timeout 10 2>&1`;
is($? >> 8, 0, 'the CLI sends an action over wss://') or diag($cli);
like($cli, qr/ack_matched/, '... and gets its ack');
$cli = `'$CLI' send --url '$url' --target-id sdk-ok --timeout 10 2>&1`;
isnt($? >> 8, 0, 'the CLI refuses a panel whose certificate it cannot verify');
like($cli, qr/certificate|verif/i, '... and says why');

$t->stop;

# --- a second agent: amonitor_ssl_name, no client certificate ---------------

my $named2 = start_sdk(id => 'sdk-sni', port => $t->port(6), cert => 'sdk');
my $needcert = start_sdk(id => 'sdk-needcert', port => $t->port(7),
    cert => 'sdk', client_ca => 'ca');
my $plain = start_sdk(id => 'sdk-plain', port => $t->port(11));
start_http_server($t->port(12));
$t->mark_log;

$t->write_config(
    http_config => "amonitor_zone amonitor 1m;\n"
        . "amonitor_reconnect 50ms 300ms;\n"
        . "amonitor_ssl_trusted_certificate $dir/ca.crt;\n"
        . "amonitor_ssl_name sdk.test;\n"
        . "amonitor_target sdk-sni wss://127.0.0.1:%%PORT_6%%/;\n"
        . "amonitor_target sdk-needcert wss://127.0.0.1:%%PORT_7%%/;\n"
        . "amonitor_target sdk-plain wss://127.0.0.1:%%PORT_11%%/;\n"
        . "amonitor_target sdk-http wss://127.0.0.1:%%PORT_12%%/;\n"
        . "amonitor_connect_timeout 1s;",
    config => 'location = /ws/panel { amonitor_panel on; }',
)->run;

ok(wait_for(sub { sdk_log($named2) =~ /agent connected/ }, tscale(5)),
    'amonitor_ssl_name: the certificate is verified for that name');
like(sdk_log($named2), qr/server name "sdk\.test"/, '... and it is sent in SNI');

ok(wait_for(sub { sdk_log($needcert) =~ /TLS handshake failed/ }, tscale(5)),
    'an SDK that requires a client certificate refuses an agent without one');
unlike(sdk_log($needcert), qr/agent connected/, '... no WebSocket opens');
# TLS 1.3: the refusal may come after the client's Finished, while the
# agent sends or reads its WebSocket handshake (or the SDK resets first)
$t->error_log_like(qr/\[error\].*(?:TLS connection to the SDK failed during the handshake: .*alert certificate required|TLS handshake with the SDK failed|SDK closed the connection during the handshake|cannot send the handshake to the SDK|connection reset by peer).*upstream: sdk-needcert/,
    '... and the agent logs the failed attempt');
# (after amonitor_connect_timeout: the checks above may all pass sooner)
# The first attempt's line stands for the outage.  The ClientHello's random
# bytes hold a "\n\n" about once in 700 tries: that ends the request's
# head for the SDK, which answers 400, and the first line says so instead.
ok($t->wait_error_log(
    qr/\[error\].*TLS handshake with the SDK (?:timed out|failed: .*wrong version number).*upstream: sdk-plain/,
    tscale(5)), '... wss:// to an SDK without TLS: the agent logs why');
if (sdk_log($plain) =~ /connection 1 from [^\n]*: handshake rejected: 400/) {
    $t->error_log_like(qr/\[error\].*TLS handshake with the SDK failed: .*wrong version number.*upstream: sdk-plain/,
        '... the SDK took the hello for a bad request: "wrong version number"');
} else {
    $t->error_log_like(qr/\[error\].*TLS handshake with the SDK timed out.*upstream: sdk-plain/,
        '... the TLS handshake times out (the SDK waits for the rest of an '
        . 'HTTP request)');
}
# (under valgrind the first attempt can time out before the server's
# answer is read, and the next ones are summed up in a minute: nginx's own
# line of each says why)
my $why = $t->valgrind
    ? qr/(?:\[error\].*TLS handshake with the SDK failed: |\[info\].*)SSL_do_handshake\(\) failed.*wrong version number.*upstream: sdk-http/
    : qr/\[error\].*TLS handshake with the SDK failed: SSL_do_handshake\(\) failed: .*wrong version number.*upstream: sdk-http/;
$t->error_log_like($why,
    'wss:// to a plain HTTP server: the handshake error says why')
    or diag(join '', grep { /sdk-http/ } split /^/, $t->read_error_log);
$t->no_error_log(qr/\[crit\]/,
    '... nginx\'s own lines about those attempts are not at crit');
is($t->log_count(qr/\[error\].*upstream: sdk-http/), 1,
    '... and the attempts make one error line, not one per attempt');

$p = $t->panel('/ws/panel');
$r = action($p, target => 'sdk-needcert');
is($r && $r->{json}{payload}{code}, 'TARGET_UNAVAILABLE',
    '... an action to it gets TARGET_UNAVAILABLE');

$t->stop;

# --- a third agent: amonitor_ssl_server_name off, amonitor_ssl_verify off ---

my $nosni = start_sdk(id => 'sdk-nosni', port => $t->port(9), cert => 'sdk');
my $rogue2 = start_sdk(id => 'sdk-rogue2', port => $t->port(10),
    cert => 'rogue');
$t->mark_log;

$t->write_config(
    http_config => "amonitor_zone amonitor 1m;\n"
        . "amonitor_reconnect 50ms 300ms;\n"
        . "amonitor_ssl_verify off;\n"
        . "amonitor_ssl_name sdk.test;\n"
        . "amonitor_ssl_server_name off;\n"
        . "amonitor_target sdk-nosni wss://127.0.0.1:%%PORT_9%%/;\n"
        . "amonitor_target sdk-rogue2 wss://127.0.0.1:%%PORT_10%%/;",
    config => 'location = /ws/panel { amonitor_panel on; }',
)->run;

ok(wait_for(sub { sdk_log($nosni) =~ /agent connected/ }, tscale(5)),
    'amonitor_ssl_server_name off: the agent connects');
like(sdk_log($nosni), qr/server name ""/, '... and sends no SNI');
ok(wait_for(sub { sdk_log($rogue2) =~ /agent connected/ }, tscale(5)),
    'amonitor_ssl_verify off: a certificate nobody trusts is accepted '
    . '(encryption without authentication)');
$t->no_error_log(qr/TLS verification/, '... and no verification is logged');
$t->stop;

stop_sdks();
Test::AMonitor::Interop::stop_sdk($py);

done_testing();
