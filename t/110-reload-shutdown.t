# Reload and shutdown: "nginx -s reload" keeps the dedupe state in the
# zone; panels of the old workers are closed with 1012 and a reason that
# says to reconnect, their SDK connections with 1001 (going away); the new
# workers reconnect; a quit with open panels and SDK
# connections is quick and leaves no [alert] behind.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Time::HiRes qw(time);

# Instances made inside subtests are kept until the end of the file, so
# that the final check of the harness (every error.log clean, no forced
# stop) covers them too: it only sees instances that are still alive.
my @KEEP;

sub instance {
    my $i = Test::AMonitor->new(@_);
    push @KEEP, $i;
    return $i;
}


sub setup {
    my (%o) = @_;
    my $t = instance(workers => $o{workers} // 1);
    my $sdk = fake_sdk(port => $t->port(1), target_id => 'a',
        heartbeat_interval => 0.2);
    $t->write_config(
        http_config => "amonitor_zone amonitor 1m;\n"
            . "amonitor_reconnect 50ms 300ms;\n"
            . "amonitor_target a ws://127.0.0.1:%%PORT_1%%/;",
        config => 'location = /ws/panel { amonitor_panel on; }',
    )->run;
    $sdk->wait_connections($t->workers);
    return ($t, $sdk);
}

# "nginx -s reload" itself, then wait for a full set of new workers
sub nginx_s_reload {
    my ($t) = @_;
    my %old = map { $_ => 1 } $t->worker_pids;
    my $out = `"@{[ $t->binary ]}" -p "@{[ $t->prefix ]}/" -c "@{[ $t->prefix ]}/nginx.conf" -s reload 2>&1`;
    my $st = $? >> 8;
    my $ok = wait_for(sub {
        (grep { !$old{$_} } $t->worker_pids) >= $t->workers }, 10);
    return ($st == 0 && $ok && old_gone(keys %old)) ? 1 : 0;
}

# until the old workers have exited, they may still accept a connection
# that the new panel of a test would then lose
sub old_gone {
    my (@pids) = @_;
    return wait_for(sub { !grep { kill(0, $_) } @pids }, 10) ? 1 : 0;
}

# $t->reload (HUP), then wait for the old workers to exit
sub reload_settled {
    my ($t) = @_;
    my @old = $t->worker_pids;
    return $t->reload && old_gone(@old);
}

subtest 'nginx -s reload keeps the dedupe state' => sub {
    my ($t, $sdk) = setup(workers => 2);
    my $p = $t->panel('/ws/panel');
    $p->send_json({ msg_id => 'before-reload', type => 'action',
        target_id => 'a', payload => { action => 'restart' } });
    my $ack = $p->recv_type('action_ack', action_msg_id => 'before-reload');
    ok($ack, 'acked before the reload');
    unlike($ack && $ack->{data}, qr/duplicate/, 'as a first execution');
    is($sdk->executed('before-reload'), 1, 'executed once');

    $t->mark_log;
    ok(nginx_s_reload($t), 'nginx -s reload: new workers run');
    ok($sdk->wait_connections(2), 'the new workers connect to the SDK');

    my $q = $t->panel('/ws/panel');
    $q->send_json({ msg_id => 'before-reload', type => 'action',
        target_id => 'a', payload => { action => 'restart',
            params => { again => 1 } } });
    my $d = $q->recv_type('action_ack', action_msg_id => 'before-reload');
    ok($d, 'the same msg_id after the reload is answered');
    is($d && $d->{json}{payload}{message}, 'duplicate ignored',
        '"duplicate ignored"');
    ok($d && $d->{json}{payload}{duplicate}, '"duplicate": true');
    is($d && $d->{json}{payload}{original}{message}, 'ok',
        'with the original result kept in the zone');
    sleep_loop(0.3);
    is($sdk->executed('before-reload'), 1, 'the SDK did not run it again');

    # and a second reload through HUP, with a new msg_id in between
    $q->send_json({ msg_id => 'between', type => 'action', target_id => 'a',
        payload => { action => 'restart' } });
    ok($q->recv_type('action_ack', action_msg_id => 'between'), 'acked');
    ok(reload_settled($t), 'reload (HUP)');
    ok($sdk->wait_connections(2), 'connected again');
    my $r = $t->panel('/ws/panel');
    for my $id ('before-reload', 'between') {
        $r->send_json({ msg_id => $id, type => 'action', target_id => 'a',
            payload => { action => 'restart' } });
        my $m = $r->recv_type('action_ack', action_msg_id => $id);
        is($m && $m->{json}{payload}{message}, 'duplicate ignored',
            "$id: still a duplicate after two reloads");
    }
    no_error_log(qr/\[(?:alert|crit|emerg)\]/, 'no alert, crit or emerg');
    no_error_log('open socket', 'no "open socket left"');
    $r->close(1000);
    $t->stop;
    $sdk->stop;
};

subtest 'reload: panels of the old workers get 1012, SDK connections of the '
    . 'old workers are closed with 1001' => sub {
    my ($t, $sdk) = setup(workers => 2);
    my @p = map { $t->panel('/ws/panel') } 1 .. 4;
    ok((grep { $_->recv_type('heartbeat') } @p) == 4,
        'four panels get heartbeats');

    $t->mark_log;
    # the connections open now are the ones the agent must close
    ok($sdk->wait_connections(2), 'the SDK has both agent connections');
    my @old = $sdk->conn_ids;
    my $t0 = time;
    ok(reload_settled($t), 'reload');
    ok(wait_for(sub { !grep { $_->is_open } @p }, 5),
        'every panel of the old workers is closed');
    ok(time - $t0 < 3, sprintf('promptly (%.2fs)', time - $t0));
    for my $i (0 .. $#p) {
        is($p[$i]->close_code, 1012, "panel $i: close frame with 1012");
        is($p[$i]->close_reason, 'agent reloading or stopping: reconnect',
            "panel $i: with the reason that says to reconnect");
    }

    ok($sdk->wait_closes(\@old, 5), 'the two old SDK connections closed');
    is_deeply([map { $_->{code} } $sdk->closes_of(@old)], [1001, 1001],
        'both with 1001 (going away)');
    is_deeply([map { $_->{reason} } $sdk->closes_of(@old)],
        ['agent shutting down', 'agent shutting down'],
        'and the reason "agent shutting down"');
    ok($sdk->wait_connections(2), 'the new workers connect');
    sleep_loop(0.3);
    is($sdk->connections, 2, 'exactly two connections after the reload');

    my $q = $t->panel('/ws/panel');
    ok($q->recv_type('heartbeat'), 'a new panel gets heartbeats through the '
        . 'new workers');
    no_error_log(qr/\[(?:alert|crit|emerg)\]/, 'no alert, crit or emerg');
    no_error_log('open socket', 'no "open socket left"');
    $q->close(1000);
    $t->stop;
    $sdk->stop;
};

subtest 'quit with open panels and SDK connections: 1012 to panels, 1001 to '
    . 'SDKs, quick, no alert' => sub {
    my ($t, $sdk) = setup(workers => 2);
    my @p = map { $t->panel('/ws/panel') } 1 .. 6;
    ok((grep { $_->recv_type('heartbeat') } @p) == 6, 'six panels receive');

    # one panel in the middle of a fragmented message, one raw panel that
    # never reads
    $p[5]->send_frame(0, 0, 0, 0, 1, '{"msg_id":"half');
    my ($slow) = slow_panel($t->port(0), '/ws/panel');
    ok($slow, 'a panel that does not read');

    $t->mark_log;
    # the connections open now are the ones the agent must close
    ok($sdk->wait_connections(2), 'the SDK has both agent connections');
    my @old = $sdk->conn_ids;
    my $t0 = time;
    ok($t->stop(timeout => 5), 'nginx exits on QUIT');
    my $took = time - $t0;
    # the raw panel neither reads nor answers the 1012: the worker waits
    # for its close frame (RFC 6455 7.1.1) at most the 3 s close timeout
    ok($took < 4.5, sprintf('within the close timeout (%.2fs)', $took));
    ok(wait_for(sub { !grep { $_->is_open } @p }, 3), 'every panel closed');
    is(scalar(grep { ($_->close_code // 0) == 1012 } @p), 6,
        'all with a 1012 close frame');
    is(scalar(grep { ($_->close_reason // '')
        eq 'agent reloading or stopping: reconnect' } @p), 6,
        'and the reason "agent reloading or stopping: reconnect"');
    ok($sdk->wait_closes(\@old, 3), 'both SDK connections closed');
    is_deeply([map { $_->{code} } $sdk->closes_of(@old)], [1001, 1001],
        'with 1001');
    is_deeply([map { $_->{reason} } $sdk->closes_of(@old)],
        ['agent shutting down', 'agent shutting down'],
        'and the reason "agent shutting down"');
    my $log = $t->read_error_log;
    unlike($log, qr/\[(?:alert|crit|emerg)\]/, 'no alert, crit or emerg');
    unlike($log, qr/open socket .* left/, 'no "open socket left"');
    unlike($log, qr/exited on signal/, 'no worker crashed');
    $sdk->stop;
};

subtest 'quit with an SDK that is down (reconnect timer pending): quick'
    => sub {
    my $t = instance;
    $t->write_config(
        http_config => "amonitor_zone amonitor 1m;\n"
            . "amonitor_reconnect 5s 10s;\n"
            . "amonitor_target down ws://127.0.0.1:%%PORT_1%%/;",
        config => 'location = /ws/panel { amonitor_panel on; }',
    )->run;
    ok(wait_error_log(qr/cannot connect to the SDK: connection refused/, 3),
        'the first attempt failed');
    my $t0 = time;
    ok($t->stop(timeout => 4), 'nginx exits on QUIT');
    ok(time - $t0 < 2, sprintf('within 2s, not after the 5s reconnect '
        . 'delay (%.2fs)', time - $t0));
    unlike($t->read_error_log, qr/\[(?:alert|crit)\]/, 'no alert or crit');
};

subtest 'quit while an SDK handshake is in progress: quick' => sub {
    my $t = instance;
    # accepts TCP, never answers the handshake
    my $accepted = 0;
    my $hang = Mojo::IOLoop->server({ address => '127.0.0.1',
        port => $t->port(2) }, sub { $accepted++; $_[1]->timeout(0) });
    $t->write_config(
        http_config => "amonitor_zone amonitor 1m;\n"
            . "amonitor_connect_timeout 10s;\n"
            . "amonitor_target hang ws://127.0.0.1:%%PORT_2%%/;",
        config => 'location = /ws/panel { amonitor_panel on; }',
    )->run;
    ok(wait_for(sub { $accepted }, 3), 'the agent connected and waits for '
        . 'the handshake answer');
    my $t0 = time;
    ok($t->stop(timeout => 4), 'nginx exits on QUIT');
    ok(time - $t0 < 2, sprintf('within 2s, not after the 10s connect '
        . 'timeout (%.2fs)', time - $t0));
    unlike($t->read_error_log, qr/\[(?:alert|crit)\]/, 'no alert or crit');
    Mojo::IOLoop->remove($hang);
};

subtest 'reload with a changed target list: the new target is dialed, the '
    . 'removed one is closed' => sub {
    my ($t, $sdk) = setup(workers => 1);
    my $b = fake_sdk(port => $t->port(2), target_id => 'b',
        heartbeat_interval => 0);
    my %parts = $t->config_parts;
    $t->write_config(%parts,
        http_config => "amonitor_zone amonitor 1m;\n"
            . "amonitor_reconnect 50ms 300ms;\n"
            . "amonitor_target b ws://127.0.0.1:%%PORT_2%%/;");
    ok(reload_settled($t), 'reload');
    ok($b->wait_connections(1), 'the new target is connected');
    ok(wait_for(sub { $sdk->connections == 0 }, 5),
        'the removed target\'s connection is closed');
    sleep_loop(0.5);
    is($sdk->connections, 0, 'and not dialed again');
    $t->stop;
    $sdk->stop;
    $b->stop;
};

done_testing();
