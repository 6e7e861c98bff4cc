
pb-h1tr	heartbeat"demo-target-a(€ìûí«32&
demo-target-a

cpu0.5	
mem12