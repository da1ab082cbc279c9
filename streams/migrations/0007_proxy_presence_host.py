from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('streams', '0006_time_zone_and_peaks'),
    ]

    operations = [
        migrations.AddField(
            model_name='presenceconnection',
            name='host',
            field=models.CharField(blank=True, default='', max_length=64),
        ),
    ]
