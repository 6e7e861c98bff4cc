# A reload seen by a panel of another implementation: Python's websockets
# library (t/interop/reload_panel.py) reading behind and sending all the
# time.  asyncio drops what it has not read when a write fails, so a
# reset from the exiting worker (a close() with the panel's bytes still
# arriving) ends such a panel with 1006 and loses what was still in the
# socket.  The worker half-closes instead: the panel reads everything that
# was in flight and then its 1012.  Three rounds, each must end so, and
# a round whose panel reads slowly.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Interop qw(python_websockets reload_rounds);

my $PY = '/usr/bin/python3';
python_websockets($PY);

my $t = Test::AMonitor->new(workers => 1);

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_reconnect 50ms 300ms;
    amonitor_target py-reload ws://127.0.0.1:%%PORT_1%%/;
    amonitor_send_queue 4096;
    amonitor_connection_buffer_limit 64m;
    amonitor_ping 0;
EOC
    config => 'location = /ws/panel { amonitor_panel on; }',
)->run;

reload_rounds($t, $PY, 'ws://127.0.0.1:' . $t->port(0) . '/ws/panel',
    sdk_port => $t->port(1));

# A panel that reads slowly (5 ms a message): it needs about 7 s to read
# what was in flight, more than the 3 s given to a panel that reads
# nothing.  The old worker keeps it while it reads (at most 30 s); before,
# it closed it after 3 s, and the panel's next message made the kernel
# reset the connection: 1006, and the rest lost.
reload_rounds($t, $PY, 'ws://127.0.0.1:' . $t->port(0) . '/ws/panel',
    sdk_port => $t->port(1), rounds => 1, label => 'slow ',
    args => ['--read-delay', 0.005]);

done_testing();
