# Learned targets are bounded and leave: a dial on demand that never
# connects is given up after amonitor_dial_attempts; a learned target
# nobody had open for amonitor_learned_expire is forgotten, one open is
# kept however long it is open; a reload
# re-checks every learned URL against the new amonitor_allow_url
# patterns; a panel's dial cannot squat the id of an SDK that registers
# later (configured > registered > dialed on demand); dials are limited
# per panel and in all (amonitor_dial_limit_per_panel, _limit).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use IO::Socket::INET;

my $t = Test::AMonitor->new(workers => 1);
my $hub = fake_sdk(port => $t->port(1), target_id => 'hub',
    heartbeat_interval => 0);
my $evil = fake_sdk(port => $t->port(2), target_id => 'evil',
    heartbeat_interval => 0);
my $real = fake_sdk(port => $t->port(3), target_id => 'real',
    heartbeat_interval => 0);
my @d = map { fake_sdk(port => $t->port(4 + $_), target_id => "d$_",
    heartbeat_interval => 0) } 0 .. 3;

# where nothing answers a handshake: accepted and closed at once
my $sink = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
    Listen => 64, Proto => 'tcp', ReuseAddr => 1, Blocking => 0)
    or die "listen: $!";
my $sink_port = $sink->sockport;

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_target hub ws://127.0.0.1:%%PORT_1%%/;
    amonitor_allow_url ws://127.0.0.1:*;
    amonitor_reconnect 100ms 200ms;
    amonitor_connect_timeout 500ms;
    amonitor_ack_timeout 2s;
    amonitor_dial_attempts 3;
    amonitor_learned_expire 2s;
    amonitor_dial_limit 3;
    amonitor_dial_limit_per_panel 2;
EOC
    config => <<'EOC',
        location = /ws/panel { amonitor_panel on; }
        location = /ws/snap { amonitor_panel on; amonitor_panel_snapshot on; }
        location = /status { amonitor_status; }
        location = /metrics { amonitor_metrics; }
EOC
)->run;

ok($hub->wait_connections(1), 'the configured SDK is connected');

# accept and close what arrives at the sink for "secs"; how many
sub sink_accepts {
    my ($secs) = @_;
    my ($n, $end) = (0, now_ms() + 1000 * $secs);
    while (now_ms() < $end) {
        sleep_loop(0.05);
        while (my $c = $sink->accept) { $n++; close $c }
    }
    return $n;
}

sub ask {
    my ($p, %o) = @_;
    my $id = uuid4();
    my %env = (msg_id => $id, type => 'action', timestamp => now_ms(),
        payload => { action => 'restart' });
    $env{target_id} = $o{target_id} if defined $o{target_id};
    $env{payload}{target_url} = $o{url} if defined $o{url};
    $p->send_json(\%env);
    my $r = $p->answer_to($id, 5);
    return ($r, $id);
}

sub code { my ($r) = @_; return !$r ? 'none' : $r->{type} eq 'action_ack'
    ? 'ack' : $r->{payload}{code} }

sub url { return 'ws://127.0.0.1:' . $_[0] . '/' }

sub register_text {
    my ($id, $url) = @_;
    return encode_json({ msg_id => uuid4(), type => 'register',
        target_id => $id, timestamp => now_ms(),
        payload => { target_id => $id, sdk_url => $url } });
}

my $p = $t->panel('/ws/panel');

subtest 'a dial that never connects is given up after 3 attempts' => sub {
    $t->mark_log;
    my ($r) = ask($p, target_id => 'never', url => url($sink_port));
    is(code($r), 'TARGET_UNAVAILABLE', 'the action: TARGET_UNAVAILABLE');
    my $n = sink_accepts(3);
    cmp_ok($n, '>=', 1, "it was tried ($n attempts)");
    cmp_ok($n, '<=', 4, 'a bounded number of times');
    error_log_like(qr/\[info\] .*learned target "never" at ws:\/\/127\.0\.0\.1:$sink_port\/ forgotten: dialed on demand, never connected/,
        'logged at info');
    is(sink_accepts(2), 0, 'no attempt afterwards');
    ($r) = ask($p, target_id => 'never');
    is(code($r), 'UNKNOWN_TARGET', 'its id is unknown again');
};

subtest 'a panel cannot squat the id of an SDK that registers later' => sub {
    my ($r, $id) = ask($p, target_id => 'sq-x', url => url($t->port(2)));
    is(code($r), 'ack', 'a panel dialed "sq-x" at its own URL');
    is($evil->executed($id), 1, 'that URL got the action');

    $t->mark_log;
    $hub->send_all(register_text('sq-x', url($t->port(3))));
    ok($real->wait_connections(1, 5), 'the registering SDK is dialed');
    error_log_like(qr/register of "sq-x" .* displaces the target "sq-x" dialed on demand/,
        'the register displaced the dial (info)');
    ok(wait_for(sub { $evil->connections == 0 }, 3),
        'the squatter\'s connection was closed');

    ($r, $id) = ask($p, target_id => 'sq-x');
    is(code($r), 'ack', 'an action to "sq-x" is acked');
    is($real->executed($id), 1, 'by the registered SDK');
    is($evil->executed($id), 0, 'not by the squatter');

    ($r, $id) = ask($p, target_id => 'sq-x', url => url($t->port(2)));
    is($real->executed($id), 1,
        'a dial naming the registered id goes to the registered SDK');
    ($r, $id) = ask($p, target_id => 'hub', url => url($t->port(2)));
    is($hub->executed($id), 1, 'and one naming the configured id to it');
    is($evil->connections, 0, 'the squatter was not dialed again');

    my $n = $t->panel('/ws/snap');
    my $st = $n->recv_type('target_status', target_id => 'sq-x',
        timeout => 3);
    is($st && $st->{json}{payload}{url}, url($t->port(3)),
        'a new panel\'s snapshot gives sq-x the registered URL');
    $n->close(1000);
};

subtest 'dials are limited per panel and in all' => sub {
    my ($r) = ask($p, target_id => 'd0', url => url($t->port(4)));
    is(code($r), 'ack', 'the first dial of a panel');
    ($r) = ask($p, target_id => 'd1', url => url($t->port(5)));
    is(code($r), 'ack', 'its second');
    ($r) = ask($p, target_id => 'd2', url => url($t->port(6)));
    is(code($r), 'TARGET_UNAVAILABLE', 'its third: TARGET_UNAVAILABLE');
    like($r && $r->{payload}{message}, qr/amonitor_dial_limit_per_panel/,
        'names amonitor_dial_limit_per_panel');
    is($d[2]->accepted, 0, 'and was not dialed');

    my $q = $t->panel('/ws/panel');
    ($r) = ask($q, target_id => 'd2', url => url($t->port(6)));
    is(code($r), 'ack', 'another panel may dial: 3 in all');
    ($r) = ask($q, target_id => 'd3', url => url($t->port(7)));
    is(code($r), 'TARGET_UNAVAILABLE', 'a fourth dial in all is refused');
    like($r && $r->{payload}{message}, qr/amonitor_dial_limit\)/,
        'names amonitor_dial_limit');
    is($d[3]->accepted, 0, 'and was not dialed');

    $hub->send_all(register_text('reg-d3', url($t->port(7))));
    ok($d[3]->wait_connections(1, 5),
        'a register is not limited by the dials');
    $q->close(1000);
};

subtest 'a learned target that is gone expires' => sub {
    $t->mark_log;
    $d[0]->stop;
    error_log_like(qr/\[info\] .*learned target "d0" .* forgotten/,
        'forgotten after amonitor_learned_expire (info)', 8);
    my ($r) = ask($p, target_id => 'd0');
    is(code($r), 'UNKNOWN_TARGET', 'its id is unknown');
    my $s = try_decode_json($t->http_get('/status')->{body}) // {};
    ok(!grep({ $_->{id} eq 'd0' } @{ $s->{targets} // [] }),
        'amonitor_status no longer lists it');
    ok(grep({ $_->{id} eq 'd1' } @{ $s->{targets} // [] }),
        'one still open stays');
    my $n = $t->panel('/ws/snap');
    my @ids;
    while (my $m = $n->recv(1)) {
        push @ids, $m->{json}{target_id} // ''
            if ($m->{json}{type} // '') eq 'target_status';
    }
    ok((grep { $_ eq 'd1' } @ids), 'a new panel\'s snapshot has d1');
    ok(!(grep { $_ eq 'd0' } @ids), 'but not the forgotten d0');
    $n->close(1000);
    my $m = $t->http_get('/metrics')->{body} // '';
    like($m, qr/^amonitor_target_up\{target="d1"\} 1$/m,
        '/metrics has d1');
    unlike($m, qr/target="d0"/, 'but no series of the forgotten d0');

    # the panel dialed d0 and d1 (its limit, 2): d0 forgotten, it may dial
    $d[0]->start;
    ($r) = ask($p, target_id => 'd0', url => url($t->port(4)));
    is(code($r), 'ack',
        'the panel that dialed it may dial again once it is forgotten');
    is($d[0]->wait_connections(1, 5) ? 1 : 0, 1, 'd0 is dialed again');
};

subtest 'an open target is kept past a longer amonitor_learned_expire' => sub {
    # 16s: a worker marks it seen every 2 s, not every second
    $t->mark_log;
    my %parts = $t->config_parts;
    (my $http = $parts{http_config})
        =~ s/amonitor_learned_expire 2s;/amonitor_learned_expire 16s;/;
    $t->write_config(%parts, http_config => $http);
    ok($t->reload, 'reloaded with amonitor_learned_expire 16s');
    my $n = $d[1]->accepted;
    ok(wait_for(sub { $d[1]->accepted > $n }, 5), 'the new worker dials d1');
    sleep_loop(18);
    my $s = try_decode_json($t->http_get('/status')->{body}) // {};
    ok(grep({ $_->{id} eq 'd1' } @{ $s->{targets} // [] }),
        'after 18 s d1 is still listed');
    ok(!$t->wait_error_log(qr/learned target "d1" .* forgotten/, 0.1),
        'and was never forgotten');
    ok($d[1]->connections >= 1, 'and is connected');
};

subtest 'a reload re-checks learned URLs against the allow patterns' => sub {
    $p->close(1000);
    ok($d[1]->connections >= 1, 'd1 is connected before');
    $t->mark_log;
    my %parts = $t->config_parts;
    (my $http = $parts{http_config}) =~ s/^\s*amonitor_allow_url .*\n//mg;
    $t->write_config(%parts, http_config => $http);
    ok($t->reload, 'reloaded without amonitor_allow_url');
    error_log_like(qr/learned target "d1" at ws:\/\/127\.0\.0\.1:\d+\/ forgotten: not allowed by amonitor_allow_url any more/,
        'the new worker forgot it (info)', 5);
    ok(wait_for(sub { $d[1]->connections == 0 }, 5),
        'nobody is connected to d1');
    my $n = $d[1]->accepted;
    sleep_loop(2);
    is($d[1]->accepted, $n, 'and nobody dials it again');
    ok($hub->connections >= 1, 'the configured target stays');
};

done_testing();
