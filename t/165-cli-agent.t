# The amonitor CLI against a real agent: `watch` lists every target the
# agent has (from its amonitor_status endpoint beside the panel URL), also
# one whose SDK never spoke; --subscribe (watch, sim) has the agent send
# only the targets it names or matches; a panel token the agent wants is named
# when it is missing.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use POSIX qw(:sys_wait_h);
use Time::HiRes ();

my $CLI = "$FindBin::Bin/../build/amonitor";
my $t = Test::AMonitor->new;
my $sdk = fake_sdk(port => $t->port(2), target_id => 'speaks',
    heartbeat_interval => 0.2);
my $rejecting = fake_sdk(port => $t->port(3), target_id => 'rejects',
    token => 'right', heartbeat_interval => 0.2);
$t->write_config(
    http_config => "amonitor_zone amonitor 1m;\n"
        . "amonitor_reconnect 100ms 500ms;\n"
        . "amonitor_target silent ws://127.0.0.1:%%PORT_1%%/;\n"
        . "amonitor_target speaks ws://127.0.0.1:%%PORT_2%%/;\n"
        . "amonitor_target rejects ws://127.0.0.1:%%PORT_3%%/ token=wrong;",
    config => "location = /ws/panel { amonitor_panel on; "
        . "amonitor_panel_token tok; }\n"
        . "location = /ws/snap { amonitor_panel on; "
        . "amonitor_panel_snapshot on; amonitor_panel_token tok; }\n"
        . "location = /amonitor/status { amonitor_status; }",
)->run;
ok($sdk->wait_connections(1), 'the SDK that speaks is connected');
ok(wait_for(sub { $rejecting->rejected >= 3 }, 5),
    'the SDK that rejects the token did so three times');
# (before, each handshake reset the count: it never passed 1)
my $fails;
wait_for(sub {
    my %f = map { $_->{id} => $_ } @{ decode_json(
        $t->http_get('/amonitor/status')->{body})->{targets} };
    $fails = $f{rejects}{failures} // 0;
    return $fails >= 3;
}, 5);
ok($fails >= 3, "status: the rejected attempts are counted ($fails), not "
    . 'reset by each handshake');
my $url = $t->ws_url('/ws/panel');

# run the CLI while the test's event loop (the fake SDK) keeps running
sub cli {
    my @args = @_;
    my $file = $t->prefix . '/cli.out';
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', $file or die;
        open STDERR, '>&', \*STDOUT or die;
        exec $CLI, @args;
        die "exec: $!";
    }
    my $status;
    wait_for(sub {
        return 0 unless waitpid($pid, WNOHANG) == $pid;
        $status = $?;
        return 1;
    }, 20) or do { kill 'KILL', $pid; waitpid($pid, 0); $status = -1 };
    open(my $fh, '<', $file) or die;
    local $/;
    return ($status >> 8, scalar <$fh>);
}

my ($rc, $out) = cli('watch', '--url', $url, '--token', 'tok', '--once',
    '--timeout', '1.5', '--json');
is($rc, 0, 'watch --once exits 0');
my %rows = map { $_->{target_id} => $_ }
    grep { ($_->{event} // '') eq 'target' }
    map { try_decode_json($_) // () } split /\n/, $out;
ok($rows{silent}, 'the target whose SDK never spoke is listed') or diag($out);
is($rows{silent}{state}, 'down', 'as down');
is($rows{silent}{agent_state}, 'backoff', 'the agent\'s state: backoff');
is($rows{silent}{heartbeats}, 0, 'no heartbeats');
is($rows{speaks}{state}, 'up', 'the other one is up');
ok(($rows{speaks}{heartbeats} // 0) >= 2, 'with its heartbeats');

($rc, $out) = cli('watch', '--url', $url, '--token', 'tok', '--once',
    '--timeout', '1', '--status-url', 'none');
is($rc, 0, 'watch --status-url none');
unlike($out, qr/^silent\b/m, 'lists only what it heard then');
like($out, qr/^speaks\s+up\b/m, 'the target that speaks');

($rc, $out) = cli('watch', '--url', $url, '--token', 'tok', '--once',
    '--timeout', '1', '--status-url',
    'http://127.0.0.1:' . $t->port(0) . '/nope');
is($rc, 0, 'a status URL that fails is not fatal');
like($out, qr/no target list from http:\/\/127\.0\.0\.1:\d+\/nope: HTTP 404/,
    'and says why');

# --subscribe: the agent sends only those targets, the list shows only them
my $rows = sub {
    return map { $_->{target_id} => $_ }
        grep { ($_->{event} // '') eq 'target' }
        map { try_decode_json($_) // () } split /\n/, $_[0];
};
($rc, $out) = cli('watch', '--url', $url, '--token', 'tok', '--once',
    '--timeout', '1.5', '--json', '--subscribe', 'sp*,nobody');
is($rc, 0, 'watch --subscribe with a pattern');
%rows = $rows->($out);
is_deeply([sort keys %rows], ['nobody', 'speaks'],
    'lists the targets it matches and the id it names, no other')
    or diag($out);
ok(($rows{speaks}{heartbeats} // 0) >= 2, 'with their heartbeats');
($rc, $out) = cli('watch', '--url', $url, '--token', 'tok', '--once',
    '--timeout', '1.5', '--json', '--status-url', 'none',
    '--subscribe', 'silent');
is($rc, 0, 'watch --subscribe with an id, --status-url none');
%rows = $rows->($out);
is_deeply([sort keys %rows], ['silent'],
    'the agent sent nothing of the target that speaks') or diag($out);
($rc, $out) = cli('watch', '--url', $url, '--token', 'tok', '--once',
    '--timeout', '1', '--json', '--subscribe', '*e*ts');
%rows = $rows->($out);
is_deeply([sort keys %rows], ['rejects'],
    'a pattern is matched as the agent does ("*e*ts": rejects only)')
    or diag($out);
($rc, $out) = cli('watch', '--url', $url, '--token', 'tok', '--once',
    '--timeout', '1', '--subscribe', join(',', map { "t$_" } 1 .. 300));
is($rc, 1, 'a set the agent refuses fails');
like($out, qr/handshake refused: HTTP 400: too many targets \(at most 256/,
    'with the reason the agent gives');
# sim too: only the chosen targets' heartbeats are printed
my $beats = sub {
    my %n;
    $n{ $_->{message}{target_id} // '' }++
        for grep { ($_->{event} // '') eq 'recv'
            && ($_->{message}{type} // '') eq 'heartbeat' }
        map { try_decode_json($_) // () } split /\n/, $_[0];
    return \%n;
};
($rc, $out) = cli('sim', '--url', $url, '--token', 'tok', '--json',
    '--duration', '1.2', '--target-id', 'silent');
ok($beats->($out)->{speaks}, 'sim prints the heartbeats of every target');
is($rc, 0, 'sim exits 0 when --duration ends');
($rc, $out) = cli('sim', '--url', 'ws://127.0.0.1:' . $t->port(9) . '/x',
    '--duration', '1.2');
is($rc, 1, 'sim exits 1 when it never got connected');
like($out, qr/reconnecting to /, 'after its reconnect notices');
($rc, $out) = cli('sim', '--url', $url, '--token', 'tok', '--json',
    '--duration', '1.2', '--target-id', 'silent', '--subscribe', 'sil*');
is_deeply($beats->($out), {}, 'sim --subscribe: none of another target')
    or diag($out);
like($out, qr/"event":"connected"/, 'connected all the same');

($rc, $out) = cli('watch', '--url', $url, '--token', 'tok', '--once',
    '--subscribe', 'a,,b');
is($rc, 2, 'an empty element is a usage error');
like($out, qr/invalid --subscribe "a,,b"/, 'and says so');

($rc, $out) = cli('send', '--url', $url, '--target-id', 'speaks');
is($rc, 1, 'send without the token fails');
like($out, qr/HTTP 401: the agent wants a panel token \(--token TOKEN/,
    'and names --token');
($rc, $out) = cli('send', '--url', $url, '--token', 'nope', '--target-id',
    'speaks');
like($out, qr/HTTP 401: the agent rejected the panel token/,
    'a wrong token is told apart');

# a target whose SDK stopped: the heartbeat the agent replays in the
# snapshot is as old as its timestamp says, not as its arrival
$sdk->stop;
wait_for(sub {
    my %f = map { $_->{id} => $_ } @{ decode_json(
        $t->http_get('/amonitor/status')->{body})->{targets} };
    return ($f{speaks}{state} // '') ne 'up';
}, 5) or diag('the agent still has the stopped SDK up');
my $gone = Time::HiRes::time();
wait_for(sub { Time::HiRes::time() - $gone >= 2 }, 5);
($rc, $out) = cli('watch', '--url', $t->ws_url('/ws/snap'), '--token', 'tok',
    '--once', '--timeout', '1', '--json', '--status-url', 'none');
%rows = map { $_->{target_id} => $_ }
    grep { ($_->{event} // '') eq 'target' }
    map { try_decode_json($_) // () } split /\n/, $out;
ok(($rows{speaks}{state} // '') eq 'down'
    && ($rows{speaks}{heartbeat_age_ms} // 0) >= 2900,
    'watch: a stopped target is down, its last heartbeat as old as it is '
    . '(replayed in the snapshot), not as its arrival') or diag($out);

($rc, $out) = cli('--version');
is($rc, 0, '--version exits 0');
like($out, qr/^amonitor \d+\.\d+\.\d+\n\z/, 'and prints one line');

$t->stop;
$sdk->stop;
$rejecting->stop;

done_testing();
