# An SDK in a loop cannot fill the disk through the error log: lines about
# its dropped messages (invalid ones, acks for no action of its, types
# only the agent sends, registers it does not follow) are at most 10 a
# second per target; the others
# are counted ("invalid" in the status) and their number is said in one
# warn line before the next line written, or when the connection ends.
# Another target's lines are its own.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

my $N = 300;

my $t = Test::AMonitor->new(workers => 1, log_level => 'info');
my $sdk = fake_sdk(port => $t->port(1), target_id => 'lf-a',
    heartbeat_interval => 0);
my $other = fake_sdk(port => $t->port(2), target_id => 'lf-b',
    heartbeat_interval => 0);

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_target lf-a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_target lf-b ws://127.0.0.1:%%PORT_2%%/;
EOC
    config => <<'EOC',
        location = /ws/panel { amonitor_panel on; }
        location = /status { amonitor_status; }
EOC
)->run;

ok($sdk->wait_connections(1), 'the worker dialed lf-a');
ok($other->wait_connections(1), 'the worker dialed lf-b');

sub invalid {
    my $j = try_decode_json($t->http_get('/status')->{body});
    return $j ? $j->{invalid} : -1;
}

sub lines { $t->log_count(qr/upstream: $_[0],/) }

subtest "$N invalid messages at once: at most 20 lines, all counted"
    => sub {
    $t->mark_log;
    my $before = invalid();
    $sdk->send_all('{"x":1}') for 1 .. $N;
    ok(wait_for(sub { invalid() == $before + $N }, 5),
        "\"invalid\" counts all $N");
    my $n = $t->log_count(qr/invalid message from the SDK dropped.*upstream: lf-a,/);
    ok($n >= 1 && $n <= 20, "$n lines (at most 10 a second)");

    # a message of the other target still has its line
    $other->send_all('{"x":2}');
    ok($t->wait_error_log(qr/invalid message from the SDK dropped.*upstream: lf-b,/, 3),
        'lf-b\'s own line');

    # a second later, the next line says how many went unsaid
    sleep_loop(1.2);
    $sdk->send_all('{"x":3}');
    my $quiet = $N - $n;
    ok($t->wait_error_log(qr/\[warn\].*amonitor: $quiet more messages of the SDK were dropped without a line each \(at most 10 lines a second\).*upstream: lf-a,/, 3),
        "a warn line says $quiet more");
};

subtest 'acks for no action and the agent\'s own types: the same limit'
    => sub {
    my $before = lines('lf-a');
    for my $i (1 .. $N) {
        $sdk->send_all({ msg_id => "k$i", type => 'action_ack',
            target_id => 'lf-a',
            payload => { action_msg_id => "none-$i", success => \1 } });
        $sdk->send_all({ msg_id => "e$i", type => 'error',
            target_id => 'lf-a', payload => { code => 'X' } });
    }
    ok(wait_for(sub { $t->log_count(qr/"error" from an SDK dropped|ack for an unknown action/) >= 1 }, 3),
        'lines were written');
    sleep_loop(0.5);
    my $n = lines('lf-a') - $before;
    ok($n <= 30, "$n lines for " . (2 * $N) . ' messages');
};

subtest 'registers that are not followed: the same limit' => sub {
    sleep_loop(1.2);
    $t->mark_log;
    for my $i (1 .. $N) {
        $sdk->send_all({ msg_id => "r$i", type => 'register',
            target_id => 'lf-a', payload => { target_id => "x$i",
                sdk_url => 'ws://10.1.1.1:1/' } });
        $sdk->send_all({ msg_id => "s$i", type => 'register',
            target_id => 'lf-a', payload => { target_id => "y$i",
                sdk_url => 'http://nope/' } });
    }
    ok($t->wait_error_log(qr/register .*ignored/, 3), 'lines were written');
    sleep_loop(0.5);
    my $n = $t->log_count(qr/register .*ignored/);
    ok($n <= 20, "$n lines for " . (2 * $N) . ' registers');
};

subtest 'the number still unsaid is said when the connection ends' => sub {
    sleep_loop(1.2);
    my $before = invalid();
    $sdk->send_all('{"x":4}') for 1 .. 50;
    ok(wait_for(sub { invalid() == $before + 50 }, 3), 'all 50 read');
    $t->mark_log;
    $sdk->close_all;
    ok($t->wait_error_log(qr/\[warn\].*amonitor: \d+ more messages of the SDK were dropped without a line each.*upstream: lf-a,/, 3),
        'a warn line at the close');
};

done_testing();
